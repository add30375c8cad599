//! The renderers as engine job handlers.

use async_trait::async_trait;
use genq_engine::job::kinds;
use genq_engine::{JobContext, JobFailure, JobHandler, OutputKind, OutputRole, ProducedOutput};

use crate::still::{render_still_video, RenderSettings};

/// `image_audio_video`: a still image held for the length of an audio track.
pub struct ImageAudioVideo {
    settings: RenderSettings,
}

impl ImageAudioVideo {
    pub fn new(settings: RenderSettings) -> Self {
        Self { settings }
    }
}

fn io_failure(what: &str, e: std::io::Error) -> JobFailure {
    JobFailure::new("IO_ERROR", format!("could not read the {what} input: {e}"))
}

#[async_trait]
impl JobHandler for ImageAudioVideo {
    fn kind(&self) -> &'static str {
        kinds::IMAGE_AUDIO_VIDEO
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let image = ctx
            .input_path("image")
            .await
            .map_err(|e| io_failure("image", e))?;
        let audio = ctx
            .input_path("audio")
            .await
            .map_err(|e| io_failure("audio", e))?;
        let progress = |pct: u8| ctx.set_progress(pct);
        let video = render_still_video(
            &image,
            &audio,
            &ctx.workdir,
            &self.settings,
            &progress,
            &ctx.cancel,
        )
        .await
        .map_err(|e| JobFailure::new(e.code(), e.to_string()))?;
        let output = |name: &str, role, kind, content_type: &str, path| ProducedOutput {
            name: name.to_owned(),
            role,
            kind,
            content_type: content_type.to_owned(),
            path,
        };
        Ok(vec![
            output(
                "video.mp4",
                OutputRole::Main,
                OutputKind::Video,
                "video/mp4",
                video.video,
            ),
            output(
                "thumbnail.jpg",
                OutputRole::Thumbnail,
                OutputKind::Image,
                "image/jpeg",
                video.thumbnail,
            ),
            output(
                "poster.jpg",
                OutputRole::Poster,
                OutputKind::Image,
                "image/jpeg",
                video.poster,
            ),
        ])
    }
}
