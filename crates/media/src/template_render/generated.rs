//! `ai_image_generation`: the project's prompt, filled with the job's
//! values, drawn by an image model; the picture fills the layer that names
//! the `generated` field when the project has layers, else it is the output
//! as the model made it.

use std::io::Cursor;
use std::sync::Arc;

use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput};
use genq_template::{Fill, Picture, GENERATED_FIELD};
use serde_json::json;

use super::{
    draw, invalid, io_failure, TemplateOutput, TemplateRenderInput, TemplateRenderer,
    THUMBNAIL_FILE, THUMBNAIL_LONG_SIDE,
};
use crate::handler::output as output_file;

impl TemplateRenderer {
    pub(super) async fn generated_image(
        &self,
        input: &TemplateRenderInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let slug = input
            .model
            .as_deref()
            .ok_or_else(|| invalid("input.model: an image model is required".into()))?;
        let (prompt, negative) = input.template.prompts(&input.values).unwrap_or_default();
        let (width, height) = input.template.generated_size();
        let mut model_input = json!({ "prompt": prompt, "width": width, "height": height });
        if let Some(negative) = negative.filter(|n| !n.is_empty()) {
            model_input["negative_prompt"] = json!(negative);
        }
        ctx.set_progress(5);
        let files = self
            .run_model(slug, &model_input, ctx, "image-model")
            .await?;
        let file = files
            .into_iter()
            .find(|f| f.content_type.starts_with("image/"))
            .ok_or_else(|| {
                JobFailure::new(
                    "GENERATION_FAILED",
                    format!("{slug}: the model returned no image"),
                )
            })?;
        ctx.set_progress(70);
        let bytes = tokio::fs::read(&file.path)
            .await
            .map_err(|e| io_failure("the model's picture", e))?;
        let picture = Picture::from_bytes(bytes.clone()).map_err(|why| {
            JobFailure::new(
                "GENERATION_FAILED",
                format!("{slug}: the model's picture {why}"),
            )
        })?;
        let details = json!({ "prompt": prompt, "model": slug });
        let dir = ctx.workdir().await?.to_owned();
        let mut outputs = if input.template.layers.is_empty() {
            as_made(bytes, &file.content_type, &dir).await?
        } else {
            let mut pictures = self.pictures(ctx, input).await?;
            pictures.insert(GENERATED_FIELD.to_owned(), picture);
            let fill = Fill {
                texts: input.values.texts.clone().into_iter().collect(),
                pictures,
                placeholders: false,
            };
            let template = input.template.clone();
            let fonts = Arc::clone(&self.fonts);
            let picture_type = input.picture_type;
            tokio::task::spawn_blocking(move || {
                draw(
                    &template,
                    &fill,
                    &fonts,
                    TemplateOutput::GeneratedImage,
                    picture_type,
                    &dir,
                )
            })
            .await
            .map_err(|e| JobFailure::new("RENDER_FAILED", format!("drawing failed: {e}")))??
        };
        if let Some(main) = outputs.iter_mut().find(|o| o.role == OutputRole::Main) {
            main.details = Some(details);
        }
        Ok(outputs)
    }
}

/// The model's picture as it came, and a JPEG thumbnail of it.
async fn as_made(
    bytes: Vec<u8>,
    content_type: &str,
    dir: &std::path::Path,
) -> Result<Vec<ProducedOutput>, JobFailure> {
    let extension = match content_type {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "png",
    };
    let name = format!("image.{extension}");
    let path = dir.join(&name);
    tokio::fs::write(&path, &bytes)
        .await
        .map_err(|e| io_failure("the picture", e))?;
    let thumbnail = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let side = THUMBNAIL_LONG_SIDE as u32;
        if genq_sniff::image_cut_short(&bytes) {
            return Err("the file is truncated".into());
        }
        let small = image::load_from_memory(&bytes)
            .map_err(|e| e.to_string())?
            .thumbnail(side, side)
            .to_rgb8();
        let mut out = Cursor::new(Vec::new());
        small
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .map_err(|e| e.to_string())?;
        Ok(out.into_inner())
    })
    .await
    .map_err(|e| JobFailure::new("RENDER_FAILED", format!("thumbnail failed: {e}")))?
    .map_err(|why| {
        JobFailure::new(
            "GENERATION_FAILED",
            format!("the model's picture does not decode: {why}"),
        )
    })?;
    let thumbnail_path = dir.join(THUMBNAIL_FILE);
    tokio::fs::write(&thumbnail_path, thumbnail)
        .await
        .map_err(|e| io_failure("the thumbnail", e))?;
    Ok(vec![
        output_file(
            &name,
            OutputRole::Main,
            OutputKind::Image,
            content_type,
            path,
        ),
        output_file(
            THUMBNAIL_FILE,
            OutputRole::Thumbnail,
            OutputKind::Image,
            "image/jpeg",
            thumbnail_path,
        ),
    ])
}
