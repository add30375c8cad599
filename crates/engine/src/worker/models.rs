//! Model steps inside other jobs. A renderer whose work needs a machine-
//! learning model (a voice, a talking head, a generated picture) does not
//! run the model itself: it asks a [`ModelRunner`] to run a catalog model on
//! its model backend (a Cog prediction server) — the same catalog, client
//! and cancellation as a model gateway job.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value;

use super::JobContext;
use crate::job::JobFailure;

/// A file a model step returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFile {
    pub path: PathBuf,
    pub content_type: String,
}

#[async_trait]
pub trait ModelRunner: Send + Sync + 'static {
    /// Runs the latest version of catalog model `slug` on `input` for the
    /// job of `ctx`, writing what it returns into `out_dir`. Cancelling the
    /// job cancels the prediction; a failure carries the model's own
    /// message.
    async fn run_model(
        &self,
        slug: &str,
        input: &Value,
        out_dir: &Path,
        ctx: &JobContext,
    ) -> Result<Vec<ModelFile>, JobFailure>;
}
