//! The renderers as engine job handlers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use genq_outbound::fetch::Fetcher;

use async_trait::async_trait;
use genq_engine::job::kinds;
use genq_engine::{JobContext, JobFailure, JobHandler, OutputKind, OutputRole, ProducedOutput};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::MediaError;
use crate::sniff::{MediaClass, SNIFF_BYTES};
use crate::speech::{synthesize_speech, SpeechRequest, SpeechSettings, SPEECH_FILE};
use crate::still::{
    render_still_video, RenderSettings, StillVideo, POSTER_FILE, THUMBNAIL_FILE, VIDEO_FILE,
};
use crate::title_card::{render_title_card, TitleCard};

type ProgressSink<'a> = &'a (dyn Fn(u8) + Send + Sync);

/// `image_audio_video`: a still image held for the length of an audio track.
/// The files come uploaded with the job, or as `image_url` / `audio_url` in
/// its input (http(s) or `data:`), fetched under the outbound policy.
pub struct ImageAudioVideo {
    settings: RenderSettings,
    fetcher: Arc<Fetcher>,
}

impl ImageAudioVideo {
    pub fn new(settings: RenderSettings, fetcher: Arc<Fetcher>) -> Self {
        Self { settings, fetcher }
    }

    /// A local path of the job's `name` input: its upload, or its URL fetched.
    async fn input(
        &self,
        ctx: &JobContext,
        name: &str,
        class: MediaClass,
    ) -> Result<PathBuf, JobFailure> {
        if ctx.job.input_files.iter().any(|f| f == name) {
            return ctx.input_path(name).await.map_err(|e| io_failure(name, e));
        }
        let field = format!("{name}_url");
        let invalid = |message: String| JobFailure::new("INVALID_INPUT", message);
        let url = ctx.job.input[field.as_str()]
            .as_str()
            .ok_or_else(|| invalid(format!("{field} is missing")))?;
        let dst = ctx.workdir().await?.join(format!("input-{name}"));
        tokio::select! {
            fetched = self.fetcher.fetch_to(url, &dst) => {
                fetched.map_err(|e| invalid(format!("{field}: {e}")))?;
            }
            _ = ctx.cancel.cancelled() => return Err(JobFailure::new("CANCELLED", "cancelled")),
        }
        let mut head = vec![0u8; SNIFF_BYTES];
        let read = read_head(&dst, &mut head)
            .await
            .map_err(|e| io_failure(name, e))?;
        if class.accept(&head[..read]).is_none() {
            return Err(JobFailure::new(
                "UNSUPPORTED_MEDIA_TYPE",
                format!("{field} is not {}", class.accepted()),
            ));
        }
        Ok(dst)
    }
}

async fn read_head(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn io_failure(what: &str, e: std::io::Error) -> JobFailure {
    JobFailure::new("IO_ERROR", format!("could not read the {what} input: {e}"))
}

fn failure(e: MediaError) -> JobFailure {
    JobFailure::new(e.code(), e.to_string())
}

fn output(
    name: &str,
    role: OutputRole,
    kind: OutputKind,
    content_type: &str,
    path: PathBuf,
) -> ProducedOutput {
    ProducedOutput {
        name: name.to_owned(),
        role,
        kind,
        content_type: content_type.to_owned(),
        path,
    }
}

fn video_outputs(video: StillVideo) -> Vec<ProducedOutput> {
    vec![
        output(
            VIDEO_FILE,
            OutputRole::Main,
            OutputKind::Video,
            "video/mp4",
            video.video,
        ),
        output(
            THUMBNAIL_FILE,
            OutputRole::Thumbnail,
            OutputKind::Image,
            "image/jpeg",
            video.thumbnail,
        ),
        output(
            POSTER_FILE,
            OutputRole::Poster,
            OutputKind::Image,
            "image/jpeg",
            video.poster,
        ),
    ]
}

#[async_trait]
impl JobHandler for ImageAudioVideo {
    fn kind(&self) -> &'static str {
        kinds::IMAGE_AUDIO_VIDEO
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let image = self.input(ctx, "image", MediaClass::Image).await?;
        let audio = self.input(ctx, "audio", MediaClass::Audio).await?;
        let progress = |pct: u8| ctx.set_progress(pct);
        let video = render_still_video(
            &image,
            &audio,
            ctx.workdir().await?,
            &self.settings,
            &progress,
            &ctx.cancel,
        )
        .await
        .map_err(failure)?;
        Ok(video_outputs(video))
    }
}

/// `text_to_speech`: `{text, voice?, speed?}` spoken into an MP3.
pub struct TextToSpeech {
    settings: SpeechSettings,
}

impl TextToSpeech {
    pub fn new(settings: SpeechSettings) -> Self {
        Self { settings }
    }

    /// The job minus the engine, so it can be tested without a store.
    async fn produce(
        &self,
        input: &Value,
        workdir: &Path,
        progress: ProgressSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<ProducedOutput>, MediaError> {
        let req = SpeechRequest::from_input(input)?;
        let speech = synthesize_speech(
            &req.text,
            req.voice.as_deref(),
            req.speed,
            workdir,
            &self.settings,
            progress,
            cancel,
        )
        .await?;
        Ok(vec![output(
            SPEECH_FILE,
            OutputRole::Main,
            OutputKind::Audio,
            "audio/mpeg",
            speech.audio,
        )])
    }
}

#[async_trait]
impl JobHandler for TextToSpeech {
    fn kind(&self) -> &'static str {
        kinds::TEXT_TO_SPEECH
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let progress = |pct: u8| ctx.set_progress(pct);
        self.produce(&ctx.job.input, ctx.workdir().await?, &progress, &ctx.cancel)
            .await
            .map_err(failure)
    }
}

/// `title_card`: `{prompt, duration?, background?, resolution?}` as text on
/// a solid colour, rendered to an MP4 with poster and thumbnail.
pub struct TitleCardVideo {
    settings: RenderSettings,
}

impl TitleCardVideo {
    pub fn new(settings: RenderSettings) -> Self {
        Self { settings }
    }

    async fn produce(
        &self,
        input: &Value,
        workdir: &Path,
        progress: ProgressSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<ProducedOutput>, MediaError> {
        let card = TitleCard::from_input(input)?;
        let video = render_title_card(&card, workdir, &self.settings, progress, cancel).await?;
        Ok(video_outputs(video))
    }
}

#[async_trait]
impl JobHandler for TitleCardVideo {
    fn kind(&self) -> &'static str {
        kinds::TITLE_CARD
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let progress = |pct: u8| ctx.set_progress(pct);
        self.produce(&ctx.job.input, ctx.workdir().await?, &progress, &ctx.cancel)
            .await
            .map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(outputs: &[ProducedOutput]) -> Vec<(&str, OutputRole, OutputKind, &str)> {
        outputs
            .iter()
            .map(|o| (o.name.as_str(), o.role, o.kind, o.content_type.as_str()))
            .collect()
    }

    #[test]
    fn kinds() {
        assert_eq!(
            TextToSpeech::new(SpeechSettings::default()).kind(),
            "text_to_speech"
        );
        assert_eq!(
            TitleCardVideo::new(RenderSettings::default()).kind(),
            "title_card"
        );
    }

    #[tokio::test]
    async fn text_to_speech_produces_one_mp3() {
        let dir = tempfile::tempdir().unwrap();
        let handler = TextToSpeech::new(SpeechSettings::default());
        let input = json!({"text": "Hello there.", "voice": "en-us", "speed": 1.2});
        let outputs = handler
            .produce(&input, dir.path(), &|_| {}, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            summary(&outputs),
            [(
                "speech.mp3",
                OutputRole::Main,
                OutputKind::Audio,
                "audio/mpeg"
            )]
        );
        assert_eq!(outputs[0].path, dir.path().join("speech.mp3"));
        assert!(outputs[0].path.metadata().unwrap().len() > 1000);
    }

    #[tokio::test]
    async fn title_card_produces_video_thumbnail_and_poster() {
        let dir = tempfile::tempdir().unwrap();
        let handler = TitleCardVideo::new(RenderSettings::default());
        let input = json!({"prompt": "Chapter one", "duration": 1, "resolution": "720x1280"});
        let outputs = handler
            .produce(&input, dir.path(), &|_| {}, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            summary(&outputs),
            [
                (
                    "video.mp4",
                    OutputRole::Main,
                    OutputKind::Video,
                    "video/mp4"
                ),
                (
                    "thumbnail.jpg",
                    OutputRole::Thumbnail,
                    OutputKind::Image,
                    "image/jpeg"
                ),
                (
                    "poster.jpg",
                    OutputRole::Poster,
                    OutputKind::Image,
                    "image/jpeg"
                ),
            ]
        );
        for o in &outputs {
            assert_eq!(o.path, dir.path().join(&o.name));
            assert!(o.path.is_file(), "{}", o.name);
        }
    }

    #[tokio::test]
    async fn bad_input_fails_with_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let tts = TextToSpeech::new(SpeechSettings::default());
        let err = tts
            .produce(&json!({"text": ""}), dir.path(), &|_| {}, &cancel)
            .await
            .unwrap_err();
        assert_eq!(failure(err).code, "INVALID_INPUT");
        let card = TitleCardVideo::new(RenderSettings::default());
        let err = card
            .produce(&json!({"prompt": 1}), dir.path(), &|_| {}, &cancel)
            .await
            .unwrap_err();
        let f = failure(err);
        assert_eq!(f.code, "INVALID_INPUT");
        assert!(f.message.contains("\"prompt\""), "{}", f.message);
    }
}
