//! Catalog models served by Cog, as an engine job handler.

use async_trait::async_trait;
use genq_catalog::{kinds, Backend, Catalog};
use genq_engine::{
    JobContext, JobFailure, JobHandler, ModelFile, ModelRunner, OutputKind, OutputRole,
    ProducedOutput,
};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use url::Url;

use crate::{CogClient, CogError};

/// Runs `cog` jobs: finds the job's model version in the catalog, sends the
/// input to its Cog server, and hands back the files the prediction returned.
pub struct CogBackend {
    client: CogClient,
    catalog: Arc<Catalog>,
}

impl CogBackend {
    pub fn new(client: CogClient, catalog: Arc<Catalog>) -> Self {
        Self { client, catalog }
    }

    fn server_for(&self, ctx: &JobContext) -> Result<Url, JobFailure> {
        let model = ctx
            .job
            .model
            .as_ref()
            .ok_or_else(|| unknown("the job names no model".into()))?;
        self.server_of(&model.slug, Some(&model.version))
    }

    /// The Cog server of `slug` at `version` (else its latest stable one).
    fn server_of(&self, slug: &str, version: Option<&str>) -> Result<Url, JobFailure> {
        let model = self
            .catalog
            .get(slug)
            .ok_or_else(|| unknown(format!("model {slug} is not in the catalog")))?;
        let version = model.version(version).ok_or_else(|| {
            unknown(format!(
                "model {slug} no longer has version {}",
                version.unwrap_or("(latest)")
            ))
        })?;
        match model.backend_for(version) {
            Backend::Cog(url) => {
                Url::parse(url).map_err(|e| unknown(format!("bad Cog URL for {slug}: {e}")))
            }
            Backend::Builtin(_) => Err(unknown(format!("model {slug} is not served by Cog"))),
        }
    }
}

fn unknown(why: String) -> JobFailure {
    JobFailure::new("BACKEND_ERROR", why)
}

/// The model steps of other renderers (a template job's voice, talking head
/// or generated picture) run here too, on the model's latest stable version.
#[async_trait]
impl ModelRunner for CogBackend {
    async fn run_model(
        &self,
        slug: &str,
        input: &Value,
        out_dir: &Path,
        ctx: &JobContext,
    ) -> Result<Vec<ModelFile>, JobFailure> {
        let server = self.server_of(slug, None)?;
        let prediction = format!("{}-{}", ctx.job.id, uuid::Uuid::new_v4().simple());
        tokio::fs::create_dir_all(out_dir).await.map_err(|e| {
            JobFailure::new("IO_ERROR", format!("could not create a directory: {e}"))
        })?;
        let files = self
            .client
            .predict(&server, &prediction, input, out_dir, &ctx.cancel)
            .await
            .map_err(|e: CogError| JobFailure::new(e.code(), format!("{slug}: {e}")))?;
        if files.is_empty() {
            return Err(JobFailure::new(
                "GENERATION_FAILED",
                format!("{slug}: the model returned no output"),
            ));
        }
        Ok(files
            .into_iter()
            .map(|file| ModelFile {
                path: file.path,
                content_type: file.content_type,
            })
            .collect())
    }
}

/// What kind of output a MIME type is, as the model gateway reports it.
fn output_kind(content_type: &str) -> OutputKind {
    match content_type.split('/').next().unwrap_or_default() {
        "video" => OutputKind::Video,
        "image" => OutputKind::Image,
        "audio" => OutputKind::Audio,
        _ => OutputKind::Text,
    }
}

#[async_trait]
impl JobHandler for CogBackend {
    fn kind(&self) -> &'static str {
        kinds::COG
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let server = self.server_for(ctx)?;
        // Unique per attempt: a prediction of an earlier, lost attempt may
        // still be running under the job's id on the server.
        let prediction = format!("{}-{}", ctx.job.id, uuid::Uuid::new_v4().simple());
        ctx.set_progress(1);
        let files = self
            .client
            .predict(
                &server,
                &prediction,
                &ctx.job.input,
                ctx.workdir().await?,
                &ctx.cancel,
            )
            .await
            .map_err(|e: CogError| JobFailure::new(e.code(), e.to_string()))?;
        if files.is_empty() {
            return Err(JobFailure::new(
                "GENERATION_FAILED",
                "the model returned no output",
            ));
        }
        Ok(files
            .into_iter()
            .map(|file| ProducedOutput {
                name: file
                    .path
                    .file_name()
                    .expect("outputs are files")
                    .to_string_lossy()
                    .into_owned(),
                role: OutputRole::Main,
                kind: output_kind(&file.content_type),
                content_type: file.content_type,
                path: file.path,
                details: None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_mime_type() {
        assert_eq!(output_kind("image/png"), OutputKind::Image);
        assert_eq!(output_kind("video/mp4"), OutputKind::Video);
        assert_eq!(output_kind("audio/mpeg"), OutputKind::Audio);
        assert_eq!(output_kind("text/plain"), OutputKind::Text);
        assert_eq!(output_kind("application/json"), OutputKind::Text);
    }
}
