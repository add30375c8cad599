//! `photo_qc`: every photo of the job checked by `genq-vision` (size,
//! sharpness, brightness, contrast, faces) into one JSON report, stored as
//! `report.json` and kept inline with the output.

use base64::Engine as _;
use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput};
use genq_vision::FaceBox;
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
            let faces = match &input.model {
                Some(slug) => Some(self.faces(slug, &bytes, i, ctx).await?),
                None => None,
            };
            let thresholds = thresholds.clone();
            // Decoding and measuring a 12-megapixel photo is ~0.2 s of CPU.
            let report = tokio::task::spawn_blocking(move || {
                genq_vision::decode(&bytes)
                    .map(|photo| genq_vision::check_photo_with(&photo, &thresholds, faces))
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
        let detector = input.model.as_deref().unwrap_or("builtin");
        let report = json!({ "passed": passed, "face_detector": detector, "photos": photos });
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

impl TemplateRenderer {
    /// The faces a project's face-detection model finds in a photo: it gets
    /// `{"image": data URI}` and answers `{"faces": [{"x", "y", "width",
    /// "height", "score"?}, …]}` in the photo's pixels.
    async fn faces(
        &self,
        slug: &str,
        photo: &[u8],
        index: usize,
        ctx: &JobContext,
    ) -> Result<Vec<FaceBox>, JobFailure> {
        let content_type = image::guess_format(photo)
            .map(|f| f.to_mime_type())
            .unwrap_or("application/octet-stream");
        let b64 = base64::engine::general_purpose::STANDARD;
        let input = json!({ "image": format!("data:{content_type};base64,{}", b64.encode(photo)) });
        let files = self
            .run_model(slug, &input, ctx, &format!("faces-{index}"))
            .await?;
        let unexpected = |why: String| {
            JobFailure::new(
                "GENERATION_FAILED",
                format!("{slug}: the face model's answer {why}"),
            )
        };
        let file = files
            .iter()
            .find(|f| f.content_type == "application/json")
            .ok_or_else(|| unexpected("is not JSON".into()))?;
        let text = tokio::fs::read(&file.path)
            .await
            .map_err(|e| io_failure("the face model's answer", e))?;
        let answer: FaceAnswer =
            serde_json::from_slice(&text).map_err(|e| unexpected(format!("does not read: {e}")))?;
        Ok(answer
            .faces
            .into_iter()
            .map(|f| FaceBox {
                x: f.x,
                y: f.y,
                width: f.width,
                height: f.height,
                score: f.score.unwrap_or(1.0),
            })
            .collect())
    }
}

/// What a face-detection model answers.
#[derive(serde::Deserialize)]
struct FaceAnswer {
    faces: Vec<ModelFace>,
}

#[derive(serde::Deserialize)]
struct ModelFace {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    #[serde(default)]
    score: Option<f64>,
}
