//! `photo_qc`: every photo of the job checked by `genq-vision` (size,
//! sharpness, brightness, contrast, faces) into one JSON report, stored as
//! `report.json` and kept inline with the output.

use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput};
use serde_json::{json, Value};

use super::{invalid, io_failure, TemplateRenderInput, TemplateRenderer};
use crate::handler::output as output_file;

const REPORT_FILE: &str = "report.json";

impl TemplateRenderer {
    pub(super) async fn photo_qc(
        &self,
        input: &TemplateRenderInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let thresholds = input.qc.clone().unwrap_or_default();
        let count = input.values.images.len().max(1);
        let mut photos = Vec::with_capacity(count);
        let mut passed = true;
        ctx.set_progress(2);
        for (i, (field, url)) in input.values.images.iter().enumerate() {
            let at = format!("values.{field}");
            let path = self.fetch(ctx, &at, url, &format!("photo-{i}")).await?;
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| io_failure(&at, e))?;
            let thresholds = thresholds.clone();
            // Decoding and measuring a 12-megapixel photo is ~0.2 s of CPU.
            let report = tokio::task::spawn_blocking(move || {
                genq_vision::decode(&bytes)
                    .map(|photo| genq_vision::check_photo(&photo, &thresholds))
            })
            .await
            .map_err(|e| JobFailure::new("RENDER_FAILED", format!("the check failed: {e}")))?
            .map_err(|why| invalid(format!("{at}: {why}")))?;
            passed &= report.passed;
            let mut entry = json!({ "field": field });
            if let (Value::Object(entry), Ok(Value::Object(report))) =
                (&mut entry, serde_json::to_value(&report))
            {
                entry.extend(report);
            }
            photos.push(entry);
            ctx.set_progress((5 + 90 * (i + 1) / count) as u8);
        }
        let report = json!({ "passed": passed, "photos": photos });
        let path = ctx.workdir().await?.join(REPORT_FILE);
        let text = serde_json::to_vec_pretty(&report).expect("a report serializes");
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| io_failure("the report", e))?;
        let mut output = output_file(
            REPORT_FILE,
            OutputRole::Main,
            OutputKind::Text,
            "application/json",
            path,
        );
        output.details = Some(json!({ "report": report }));
        Ok(vec![output])
    }
}
