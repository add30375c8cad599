//! `template`: a brand template filled with a job's values, rendered to a
//! PNG or JPEG (`image`), a PDF (`pdf`) or an MP4 (`video`) — every output
//! drawn from one vector scene (`genq-template`). A video's frame does not
//! move, so it goes through the still-image fast path with the soundtrack
//! ([`audio`]). The job types beyond drawing: speech (`speak`), a photo
//! check (`photo_qc`), a picture from an image model (`generated`) and a
//! talking head composed into the layout (`talking`); each model step runs
//! on the engine's [`ModelRunner`].

pub mod audio;
mod generated;
mod photo_qc;
pub(crate) mod speak;
mod talking;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use genq_catalog::kinds;
use genq_engine::{
    JobContext, JobFailure, ModelRunner, OutputKind, OutputRole, ProducedOutput, Renderer,
};
use genq_outbound::fetch::Fetcher;
use genq_template::{Fill, Fonts, Layer, Picture, Scene, Template, Values};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::Validate as _;

use crate::error::MediaError;
use crate::handler::{failure, output as output_file, video_outputs};
use crate::speech::SpeechSettings;
use crate::still::{render_still_video, RenderSettings, StillVideo};
use audio::{soundtrack, voice_track, Music};

/// The thumbnail's longest side, in pixels.
const THUMBNAIL_LONG_SIDE: f32 = 480.0;
pub const DEFAULT_MUSIC_VOLUME: f64 = 0.3;

/// What a template job makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateOutput {
    Video,
    Image,
    Pdf,
    /// The text spoken, as MP3.
    Speech,
    /// A JSON report on the values' photos.
    PhotoQc,
    /// A video whose avatar speaks the voice.
    TalkingVideo,
    /// A picture from an image model, composed into the layout if it has one.
    GeneratedImage,
}

/// What a `speech` job says, and how.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct SpeechRequest {
    #[validate(length(min = 1, max = 100_000))]
    pub text: String,
    /// An espeak-ng voice or variant, or the model's voice.
    #[serde(default)]
    pub voice: Option<String>,
    /// BCP 47.
    #[serde(default)]
    pub language: Option<String>,
    #[validate(range(min = 0.5, max = 2.0))]
    #[serde(default)]
    pub speed: Option<f64>,
}

/// An `image` render's file type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PictureType {
    #[default]
    Png,
    #[serde(alias = "jpeg")]
    Jpg,
}

/// Background music of a video.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct BackgroundMusic {
    /// http(s) or data: URL.
    pub url: String,
    /// Linear, 0–1 (default 0.3).
    #[validate(range(min = 0.0, max = 1.0))]
    #[serde(default = "default_volume")]
    pub volume: f64,
    /// Seconds into the music where the video starts.
    #[validate(range(min = 0.0))]
    #[serde(default)]
    pub start: f64,
    /// Lower the music under the voice (default on).
    #[serde(default = "yes")]
    pub ducking: bool,
}

fn default_volume() -> f64 {
    DEFAULT_MUSIC_VOLUME
}
fn yes() -> bool {
    true
}

/// A template job's input: the template as it was when the job was
/// accepted (editing the project later changes nothing here), the values
/// checked against it, and what the dialect keeps for its own reading.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, validator::Validate)]
pub struct TemplateRenderInput {
    pub output: TemplateOutput,
    pub template: Template,
    pub values: Values,
    #[serde(default)]
    pub picture_type: PictureType,
    #[validate(nested)]
    #[serde(default)]
    pub background_music: Option<BackgroundMusic>,
    #[validate(nested)]
    #[serde(default)]
    pub speech: Option<SpeechRequest>,
    /// The catalog model of the job's model step, if it has one.
    #[serde(default)]
    pub model: Option<String>,
    /// Passed on to the model as they came.
    #[serde(default)]
    pub model_options: serde_json::Map<String, serde_json::Value>,
    /// `photo_qc`'s thresholds (the defaults when absent).
    #[serde(default)]
    pub qc: Option<genq_vision::QcThresholds>,
    /// The dialect's own record of the request (not read here).
    #[serde(default)]
    #[schemars(skip)]
    pub dialect: serde_json::Value,
}

/// Renders template jobs.
pub struct TemplateRenderer {
    settings: RenderSettings,
    speech: SpeechSettings,
    fetcher: Arc<Fetcher>,
    fonts: Arc<Fonts>,
    models: Option<Arc<dyn ModelRunner>>,
}

impl TemplateRenderer {
    pub fn new(settings: RenderSettings, fetcher: Arc<Fetcher>, fonts: Arc<Fonts>) -> Self {
        Self {
            settings,
            speech: SpeechSettings::default(),
            fetcher,
            fonts,
            models: None,
        }
    }

    /// Runs the jobs' model steps on `models` (without, a job that names a
    /// model fails saying none is available).
    pub fn with_models(mut self, models: Arc<dyn ModelRunner>) -> Self {
        self.models = Some(models);
        self
    }

    /// Runs one ffmpeg step; a failure names `paths` by their labels.
    async fn ffmpeg(
        &self,
        tool: crate::process::Tool,
        paths: &[(&Path, &str)],
        ctx: &JobContext,
    ) -> Result<(), JobFailure> {
        let run = tool.run(&ctx.cancel, |_| {}).await;
        crate::diagnostics::ffmpeg_outcome(run, &self.settings.ffmpeg, paths).map_err(failure)
    }

    /// `audio` (any file ffmpeg reads) as mono 32-bit float samples at
    /// `rate`, decoded through the scratch file `raw`.
    async fn mono_samples(
        &self,
        audio: &Path,
        raw: &Path,
        rate: u32,
        ctx: &JobContext,
    ) -> Result<Vec<f32>, JobFailure> {
        let decode = crate::process::Tool::new(&self.settings.ffmpeg)
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(crate::probe::file_url(audio))
            .args(["-vn", "-ac", "1", "-ar", &rate.to_string(), "-f", "f32le"])
            .arg(crate::probe::file_url(raw))
            .timeout(self.settings.timeout);
        self.ffmpeg(decode, &[(audio, "the voice"), (raw, "output")], ctx)
            .await?;
        let bytes = tokio::fs::read(raw)
            .await
            .map_err(|e| io_failure("the voice", e))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Runs model `slug` for this job.
    async fn run_model(
        &self,
        slug: &str,
        input: &serde_json::Value,
        ctx: &JobContext,
        dir_name: &str,
    ) -> Result<Vec<genq_engine::ModelFile>, JobFailure> {
        let models = self.models.as_ref().ok_or_else(|| {
            JobFailure::new(
                "BACKEND_UNAVAILABLE",
                format!("model {slug}: this worker runs no model backends"),
            )
        })?;
        let dir = ctx.workdir().await?.join(dir_name);
        models.run_model(slug, input, &dir, ctx).await
    }

    /// Fetches `url` (for `field`) into the work directory.
    async fn fetch(
        &self,
        ctx: &JobContext,
        field: &str,
        url: &str,
        file: &str,
    ) -> Result<PathBuf, JobFailure> {
        let dst = ctx.workdir().await?.join(file);
        tokio::select! {
            fetched = self.fetcher.fetch_to(url, &dst) => {
                fetched.map_err(|e| invalid(format!("{field}: {e}")))?;
            }
            _ = ctx.cancel.cancelled() => return Err(JobFailure::new("CANCELLED", "cancelled")),
        }
        Ok(dst)
    }

    /// Every picture the template shows: the values' and the fixed ones.
    async fn pictures(
        &self,
        ctx: &JobContext,
        input: &TemplateRenderInput,
    ) -> Result<HashMap<String, Picture>, JobFailure> {
        let mut wanted: Vec<(String, String, String)> = input
            .values
            .images
            .iter()
            .map(|(key, url)| (key.clone(), format!("values.{key}"), url.clone()))
            .collect();
        for (i, layer) in input.template.layers.iter().enumerate() {
            if let Layer::Image(image) = layer {
                if let Some(src) = &image.src {
                    wanted.push((
                        src.clone(),
                        format!("template.layers[{i}].src"),
                        src.clone(),
                    ));
                }
            }
        }
        let mut pictures = HashMap::new();
        for (n, (key, field, url)) in wanted.into_iter().enumerate() {
            if pictures.contains_key(&key) {
                continue;
            }
            let path = self
                .fetch(ctx, &field, &url, &format!("picture-{n}"))
                .await?;
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| io_failure(&field, e))?;
            let picture =
                Picture::from_bytes(bytes).map_err(|why| invalid(format!("{field} {why}")))?;
            pictures.insert(key, picture);
        }
        Ok(pictures)
    }
}

fn invalid(message: String) -> JobFailure {
    JobFailure::new("INVALID_INPUT", message)
}

fn io_failure(what: &str, e: std::io::Error) -> JobFailure {
    JobFailure::new("IO_ERROR", format!("could not read {what}: {e}"))
}

#[async_trait]
impl Renderer for TemplateRenderer {
    const KIND: &'static str = kinds::TEMPLATE;
    type Input = TemplateRenderInput;

    async fn render(
        &self,
        input: TemplateRenderInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        match input.output {
            TemplateOutput::Speech => return self.speak(&input, ctx).await,
            TemplateOutput::PhotoQc => return self.photo_qc(&input, ctx).await,
            TemplateOutput::TalkingVideo => return self.talking_video(&input, ctx).await,
            TemplateOutput::GeneratedImage => return self.generated_image(&input, ctx).await,
            TemplateOutput::Video | TemplateOutput::Image | TemplateOutput::Pdf => {}
        }
        ctx.set_progress(5);
        let pictures = self.pictures(ctx, &input).await?;
        ctx.set_progress(25);
        let workdir = ctx.workdir().await?.to_owned();
        let fonts = Arc::clone(&self.fonts);
        let template = input.template.clone();
        let fill = Fill {
            texts: input.values.texts.clone().into_iter().collect(),
            pictures,
            placeholders: false,
        };
        let output = input.output;
        let picture_type = input.picture_type;
        let drawn = workdir.clone();
        // Composing and drawing is CPU work: off the async threads.
        let files = tokio::task::spawn_blocking(move || {
            draw(&template, &fill, &fonts, output, picture_type, &drawn)
        })
        .await
        .map_err(|e| JobFailure::new("RENDER_FAILED", format!("drawing failed: {e}")))??;
        ctx.set_progress(50);
        if output == TemplateOutput::Video {
            let frame = workdir.join(FRAME_FILE);
            let video = self.video(ctx, &input, &frame, &workdir).await?;
            return Ok(video_outputs(video));
        }
        Ok(files)
    }
}

const FRAME_FILE: &str = "frame.png";
const IMAGE_STEM: &str = "image";
const PDF_FILE: &str = "document.pdf";
const THUMBNAIL_FILE: &str = "thumbnail.jpg";

/// A drawing's failure: a value's picture that does not decode is the
/// input's fault.
fn drawing_failure(e: genq_template::TemplateError) -> JobFailure {
    let code = if e.at.starts_with("values.") {
        "INVALID_INPUT"
    } else {
        "RENDER_FAILED"
    };
    JobFailure::new(code, e.to_string())
}

/// Draws the scene to its files: the main output and a thumbnail (for a
/// video, the frame the video shows).
fn draw(
    template: &Template,
    fill: &Fill,
    fonts: &Fonts,
    output: TemplateOutput,
    picture_type: PictureType,
    dir: &Path,
) -> Result<Vec<ProducedOutput>, JobFailure> {
    let drawing = drawing_failure;
    let scene = Scene::compose(template, fill, fonts).map_err(drawing)?;
    let write = |name: &str, bytes: Vec<u8>| -> Result<PathBuf, JobFailure> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| io_failure(name, e))?;
        Ok(path)
    };
    let long_side = scene.width.max(scene.height) as f32;
    let thumbnail_scale = (THUMBNAIL_LONG_SIDE / long_side).min(1.0);
    let mut files = Vec::new();
    match output {
        TemplateOutput::Video => {
            write(FRAME_FILE, scene.png().map_err(drawing)?)?;
        }
        TemplateOutput::Image | TemplateOutput::GeneratedImage => {
            let (name, content_type, bytes) = match picture_type {
                PictureType::Png => ("image.png", "image/png", scene.png().map_err(drawing)?),
                PictureType::Jpg => ("image.jpg", "image/jpeg", scene.jpeg(1.0).map_err(drawing)?),
            };
            debug_assert!(name.starts_with(IMAGE_STEM));
            let path = write(name, bytes)?;
            files.push(output_file(
                name,
                OutputRole::Main,
                OutputKind::Image,
                content_type,
                path,
            ));
        }
        TemplateOutput::Pdf => {
            let path = write(PDF_FILE, scene.pdf().map_err(drawing)?)?;
            files.push(output_file(
                PDF_FILE,
                OutputRole::Main,
                OutputKind::Document,
                "application/pdf",
                path,
            ));
        }
        other => {
            return Err(JobFailure::new(
                "RENDER_FAILED",
                format!("a {other:?} job is not drawn whole"),
            ))
        }
    }
    if output != TemplateOutput::Video {
        let path = write(
            THUMBNAIL_FILE,
            scene.jpeg(thumbnail_scale).map_err(drawing)?,
        )?;
        files.push(output_file(
            THUMBNAIL_FILE,
            OutputRole::Thumbnail,
            OutputKind::Image,
            "image/jpeg",
            path,
        ));
    }
    Ok(files)
}

impl TemplateRenderer {
    async fn video(
        &self,
        ctx: &JobContext,
        input: &TemplateRenderInput,
        frame: &Path,
        workdir: &Path,
    ) -> Result<StillVideo, JobFailure> {
        let cancel = &ctx.cancel;
        let audio_field = input.template.audio.as_ref().map(|a| a.field.as_str());
        let (_, _, mixed) = self.soundtrack(ctx, input, audio_field, workdir).await?;
        ctx.set_progress(70);
        let out_dir = workdir.join("video");
        tokio::fs::create_dir_all(&out_dir)
            .await
            .map_err(|e| io_failure("the work directory", e))?;
        let progress = |pct: u8| ctx.set_progress(70 + (u16::from(pct) * 29 / 100) as u8);
        render_still_video(frame, &mixed, &out_dir, &self.settings, &progress, cancel)
            .await
            .map_err(failure)
    }
}

impl TemplateRenderer {
    /// The video's soundtrack: the voice of `audio_field` after its effects
    /// (its length is the video's, else the template's `duration`), mixed
    /// with the background music. Returns the voice track, if any, the
    /// video's length and the mix.
    async fn soundtrack(
        &self,
        ctx: &JobContext,
        input: &TemplateRenderInput,
        audio_field: Option<&str>,
        workdir: &Path,
    ) -> Result<(Option<PathBuf>, f64, PathBuf), JobFailure> {
        let cancel = &ctx.cancel;
        let voice_value =
            audio_field.and_then(|field| input.values.audio.get(field).map(|v| (field, v)));
        let mut voice = None;
        let mut duration = input.template.duration_secs();
        if let Some((field, value)) = voice_value {
            let at = format!("values.{field}");
            let source = self.fetch(ctx, &at, &value.url, "voice-source").await?;
            let track = workdir.join("voice.wav");
            duration = voice_track(&source, &value.effects, &track, &self.settings, cancel)
                .await
                .map_err(|e| named(&at, e))?;
            voice = Some(track);
        }
        ctx.set_progress(60);
        let music = match &input.background_music {
            Some(music) => {
                let path = self
                    .fetch(ctx, "background_music", &music.url, "music-source")
                    .await?;
                Some(Music {
                    path,
                    start: music.start,
                    volume: music.volume,
                    ducking: music.ducking,
                })
            }
            None => None,
        };
        let mixed = workdir.join("soundtrack.wav");
        soundtrack(
            voice.as_deref(),
            music.as_ref(),
            duration,
            &mixed,
            &self.settings,
            cancel,
        )
        .await
        .map_err(failure)?;
        Ok((voice, duration, mixed))
    }
}

/// A media error about one value, naming it.
fn named(field: &str, e: MediaError) -> JobFailure {
    match e {
        MediaError::InvalidAudio(message) => {
            invalid(format!("{field}: audio could not be decoded: {message}"))
        }
        other => failure(other),
    }
}
