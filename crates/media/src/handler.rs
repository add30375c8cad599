//! The renderers as the engine's [`Renderer`]s, each with its typed input.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use genq_catalog::kinds;
use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput, Renderer};
use genq_outbound::fetch::Fetcher;
use genq_sniff::{MediaClass, SNIFF_BYTES};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::MediaError;
use crate::speech::{synthesize_speech, SpeechInput, SpeechSettings, SPEECH_FILE};
use crate::still::{
    render_still_video, RenderSettings, StillVideo, POSTER_FILE, THUMBNAIL_FILE, VIDEO_FILE,
};
use crate::title_card::{render_title_card, TitleCard, TitleCardInput};

type ProgressSink<'a> = &'a (dyn Fn(u8) + Send + Sync);

/// What the fetcher takes: an absolute http(s) URL with a host, or a
/// `data:` URL. In the published schema too (as its `pattern`, so in
/// ECMA-262 terms: schemes are case-insensitive, hence the classes), so a
/// `file:`, `ftp:`, `javascript:` or relative URL is refused at submission
/// rather than failing the job.
static INPUT_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]|[Dd][Aa][Tt][Aa]:)").expect("a valid pattern")
});

/// An `image_audio_video` job's input: where the picture and the sound come
/// from. Either uploaded with the job (the Image+Audio Video API, which also
/// notes what it received) or given as URLs.
#[derive(Debug, Clone, Deserialize, JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct ImageAudioInput {
    /// http(s) or data: URL of a JPEG, PNG or WebP image
    #[schemars(with = "String")]
    #[validate(
        length(min = 1),
        regex(path = *INPUT_URL, message = "must be an http(s) URL with a host, or a data: URL")
    )]
    pub image_url: Option<String>,
    /// http(s) or data: URL of an MP3, WAV, M4A or OGG file
    #[schemars(with = "String")]
    #[validate(
        length(min = 1),
        regex(path = *INPUT_URL, message = "must be an http(s) URL with a host, or a data: URL")
    )]
    pub audio_url: Option<String>,
    /// The uploaded image, as the Image+Audio Video API received it (not
    /// part of the model's input).
    #[serde(default)]
    #[schemars(skip)]
    pub image: Option<UploadedFile>,
    #[serde(default)]
    #[schemars(skip)]
    pub audio: Option<UploadedFile>,
}

/// What an upload was, as its dialect recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedFile {
    pub content_type: String,
    pub size: u64,
}

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
    async fn source(
        &self,
        ctx: &JobContext,
        name: &str,
        url: Option<&str>,
        class: MediaClass,
    ) -> Result<PathBuf, JobFailure> {
        if ctx.job.input_files.iter().any(|f| f == name) {
            return ctx.input_path(name).await.map_err(|e| io_failure(name, e));
        }
        let field = format!("{name}_url");
        let invalid = |message: String| JobFailure::new("INVALID_INPUT", message);
        let url = url.ok_or_else(|| invalid(format!("{field} is missing")))?;
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

pub(crate) fn failure(e: MediaError) -> JobFailure {
    JobFailure::new(e.code(), e.to_string())
}

pub(crate) fn output(
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
        details: None,
    }
}

pub(crate) fn video_outputs(video: StillVideo) -> Vec<ProducedOutput> {
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
impl Renderer for ImageAudioVideo {
    const KIND: &'static str = kinds::IMAGE_AUDIO_VIDEO;
    type Input = ImageAudioInput;

    async fn render(
        &self,
        input: ImageAudioInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let image = self
            .source(ctx, "image", input.image_url.as_deref(), MediaClass::Image)
            .await?;
        let audio = self
            .source(ctx, "audio", input.audio_url.as_deref(), MediaClass::Audio)
            .await?;
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

/// `text_to_speech`: text spoken into an MP3.
pub struct TextToSpeech {
    settings: SpeechSettings,
}

impl TextToSpeech {
    pub fn new(settings: SpeechSettings) -> Self {
        Self { settings }
    }

    /// The job minus the engine, so it can be tested without a database.
    async fn produce(
        &self,
        input: &SpeechInput,
        workdir: &Path,
        progress: ProgressSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<ProducedOutput>, MediaError> {
        let speech = synthesize_speech(
            &input.text,
            input.voice.as_deref(),
            input.speed,
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
impl Renderer for TextToSpeech {
    const KIND: &'static str = kinds::TEXT_TO_SPEECH;
    type Input = SpeechInput;

    async fn render(
        &self,
        input: SpeechInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let progress = |pct: u8| ctx.set_progress(pct);
        self.produce(&input, ctx.workdir().await?, &progress, &ctx.cancel)
            .await
            .map_err(failure)
    }
}

/// `title_card`: text on a solid colour, rendered to an MP4 with poster and
/// thumbnail.
pub struct TitleCardVideo {
    settings: RenderSettings,
}

impl TitleCardVideo {
    pub fn new(settings: RenderSettings) -> Self {
        Self { settings }
    }

    async fn produce(
        &self,
        input: TitleCardInput,
        workdir: &Path,
        progress: ProgressSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<ProducedOutput>, MediaError> {
        let card = TitleCard::from(input);
        let video = render_title_card(&card, workdir, &self.settings, progress, cancel).await?;
        Ok(video_outputs(video))
    }
}

#[async_trait]
impl Renderer for TitleCardVideo {
    const KIND: &'static str = kinds::TITLE_CARD;
    type Input = TitleCardInput;

    async fn render(
        &self,
        input: TitleCardInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let progress = |pct: u8| ctx.set_progress(pct);
        self.produce(input, ctx.workdir().await?, &progress, &ctx.cancel)
            .await
            .map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genq_engine::worker::parse_input;
    use serde_json::json;

    fn summary(outputs: &[ProducedOutput]) -> Vec<(&str, OutputRole, OutputKind, &str)> {
        outputs
            .iter()
            .map(|o| (o.name.as_str(), o.role, o.kind, o.content_type.as_str()))
            .collect()
    }

    #[test]
    fn kinds() {
        assert_eq!(TextToSpeech::KIND, "text_to_speech");
        assert_eq!(TitleCardVideo::KIND, "title_card");
        assert_eq!(ImageAudioVideo::KIND, "image_audio_video");
    }

    #[test]
    fn image_audio_inputs_are_urls_or_uploads() {
        let urls: ImageAudioInput =
            parse_input(&json!({"image_url": "https://x/i.png", "audio_url": "data:,"})).unwrap();
        assert_eq!(urls.image_url.as_deref(), Some("https://x/i.png"));
        let uploads: ImageAudioInput = parse_input(&json!({
            "image": {"contentType": "image/png", "size": 10},
            "audio": {"contentType": "audio/mpeg", "size": 20},
        }))
        .unwrap();
        assert_eq!(uploads.audio.unwrap().size, 20);
        // The model's schema asks for both URLs and nothing else.
        let schema = genq_engine::worker::input_schema::<ImageAudioVideo>();
        assert_eq!(schema["required"], json!(["image_url", "audio_url"]));
        assert_eq!(schema["properties"]["image_url"]["type"], json!("string"));
        assert!(schema["properties"].get("image").is_none());
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[tokio::test]
    async fn text_to_speech_produces_one_mp3() {
        let dir = tempfile::tempdir().unwrap();
        let handler = TextToSpeech::new(SpeechSettings::default());
        let input =
            parse_input(&json!({"text": "Hello there.", "voice": "en-us", "speed": 1.2})).unwrap();
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
            .produce(
                parse_input(&input).unwrap(),
                dir.path(),
                &|_| {},
                &CancellationToken::new(),
            )
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
    async fn inputs_that_pass_their_type_can_still_be_refused_by_the_renderer() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let card = TitleCardVideo::new(RenderSettings::default());
        let input = parse_input(&json!({"prompt": " \n "})).unwrap();
        let f = failure(
            card.produce(input, dir.path(), &|_| {}, &cancel)
                .await
                .unwrap_err(),
        );
        assert_eq!(f.code, "INVALID_INPUT");
        assert!(f.message.contains("\"prompt\" is empty"), "{}", f.message);
        // A voice espeak-ng lacks is refused with the input's other limits,
        // so already at submission.
        let refused = parse_input::<SpeechInput>(&json!({"text": "hi", "voice": "xx-nonexistent"}))
            .unwrap_err();
        assert_eq!(refused.code, "INVALID_INPUT");
        assert!(
            refused
                .message
                .starts_with("input.voice: espeak-ng has no voice"),
            "{}",
            refused.message
        );
    }
}
