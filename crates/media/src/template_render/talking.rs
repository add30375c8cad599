//! `ai_talking_video`: the avatar layer of a template speaks its voice.
//!
//! The frame is drawn in two parts around the avatar's layer — what lies
//! below it, and what lies above it on a transparent canvas — and ffmpeg
//! lays the talking head between them, with the soundtrack mixed as for a
//! `video`. The head comes from a talking-head model (its clip, scaled to
//! cover the layer's box) or, without one, from genq's built-in animation:
//! the face found by `genq-vision`, its mouth opened with the voice's
//! loudness and a slight sway. Only that region changes, so only it is
//! piped to ffmpeg; every frame is still encoded, which the still-image
//! fast path cannot do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput};
use genq_template::{Fill, Layer, Scene, Template};
use genq_vision::{openness_envelope, TalkingHead};
use image::RgbImage;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{
    drawing_failure, invalid, io_failure, TemplateRenderInput, TemplateRenderer,
    THUMBNAIL_LONG_SIDE,
};
use crate::handler::{failure, output as output_file};
use crate::probe::file_url;
use crate::process::{StdinFeed, Tool};
use crate::still::{parse_out_time_us, BT709_TAGS};

const VIDEO_FILE: &str = "video.mp4";
const POSTER_FILE: &str = "poster.jpg";
const THUMBNAIL_FILE: &str = "thumbnail.jpg";
/// The envelope's analysis rate: loudness needs no more.
const ENVELOPE_RATE: u32 = 16_000;
/// Frames in flight between the animation and ffmpeg.
const FRAMES_BUFFERED: usize = 8;

/// A layer's box in whole pixels.
#[derive(Clone, Copy, Debug)]
struct PixelBox {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

/// The still parts of the video, drawn once.
struct Parts {
    /// What lies under the talking head (with the avatar itself when the
    /// built-in animation moves only a region of it).
    below: PathBuf,
    /// What lies over it, on a transparent canvas.
    above: PathBuf,
    poster: PathBuf,
    thumbnail: PathBuf,
    /// The avatar as it appears in the frame (for the built-in animation).
    avatar: RgbImage,
}

impl TemplateRenderer {
    pub(super) async fn talking_video(
        &self,
        input: &TemplateRenderInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let template = &input.template;
        let (image_field, audio_field) = template
            .talking_fields()
            .ok_or_else(|| invalid("template: names no avatar and voice".into()))?;
        let layer = template
            .talking_layer()
            .ok_or_else(|| invalid("template: no image layer shows the avatar".into()))?;
        let Layer::Image(image_layer) = &template.layers[layer] else {
            return Err(invalid(
                "template: the avatar's layer is not an image".into(),
            ));
        };
        if !input.values.audio.contains_key(&audio_field) {
            return Err(invalid(format!(
                "values.{audio_field}: is required (the avatar's voice)"
            )));
        }
        let place = PixelBox {
            x: image_layer.x.round() as u32,
            y: image_layer.y.round() as u32,
            width: (image_layer.width.round() as u32).max(2),
            height: (image_layer.height.round() as u32).max(2),
        };
        ctx.set_progress(2);
        let pictures = self.pictures(ctx, input).await?;
        let avatar_picture = pictures
            .get(&image_field)
            .cloned()
            .ok_or_else(|| invalid(format!("values.{image_field}: is required (the avatar)")))?;
        let workdir = ctx.workdir().await?.to_owned();
        let (voice, duration, soundtrack) = self
            .soundtrack(ctx, input, Some(&audio_field), &workdir)
            .await?;
        let voice = voice.expect("the voice value was checked");
        ctx.set_progress(15);

        let builtin = input.model.is_none();
        let fill = Fill {
            texts: input.values.texts.clone().into_iter().collect(),
            pictures,
            placeholders: false,
        };
        let parts = {
            let template = template.clone();
            let fonts = Arc::clone(&self.fonts);
            let dir = workdir.clone();
            tokio::task::spawn_blocking(move || {
                draw_parts(&template, &fill, &fonts, layer, place, builtin, &dir)
            })
            .await
            .map_err(|e| JobFailure::new("RENDER_FAILED", format!("drawing failed: {e}")))??
        };
        ctx.set_progress(20);

        let (width, height) = output_size(template, self.settings.max_long_side);
        let fps = self.settings.fps.max(1);
        let frames = (duration * f64::from(fps)).ceil() as usize;
        let mut tool = Tool::new(&self.settings.ffmpeg)
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .arg("-i")
            .arg(file_url(&parts.below));
        let (overlay, feed, made_by) = match &input.model {
            Some(slug) => {
                // MP3 rather than the mix's PCM: a tenth of the size in the
                // prediction's JSON.
                let voice_mp3 = workdir.join("voice.mp3");
                let encode = Tool::new(&self.settings.ffmpeg)
                    .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
                    .arg(file_url(&voice))
                    .args(["-vn", "-c:a", "libmp3lame", "-q:a", "2", "-f", "mp3"])
                    .arg(file_url(&voice_mp3))
                    .timeout(self.settings.timeout);
                self.ffmpeg(
                    encode,
                    &[(&voice, "the voice"), (&voice_mp3, "output")],
                    ctx,
                )
                .await?;
                let model_input =
                    model_input(&avatar_picture, &voice_mp3, &input.model_options).await?;
                let files = self
                    .run_model(slug, &model_input, ctx, "talking-head")
                    .await?;
                let clip = files
                    .into_iter()
                    .find(|f| f.content_type.starts_with("video/"))
                    .ok_or_else(|| {
                        JobFailure::new(
                            "GENERATION_FAILED",
                            format!("{slug}: the model returned no video"),
                        )
                    })?;
                tool = tool.arg("-i").arg(file_url(&clip.path));
                // The clip covers the box; when it ends first, its last frame holds.
                let overlay = format!(
                    "[1:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,\
                     fps={fps},tpad=stop_mode=clone:stop_duration={d:.3}[head];\
                     [bg][head]overlay=x={x}:y={y}:eof_action=repeat",
                    w = place.width,
                    h = place.height,
                    d = duration + 1.0,
                    x = place.x,
                    y = place.y,
                );
                (overlay, None, slug.clone())
            }
            None => {
                let at = format!("values.{image_field}");
                let avatar = parts.avatar.clone();
                let head = tokio::task::spawn_blocking(move || TalkingHead::new(avatar))
                    .await
                    .map_err(|e| {
                        JobFailure::new("RENDER_FAILED", format!("face search failed: {e}"))
                    })?
                    .map_err(|why| invalid(format!("{at}: {why}")))?;
                let openness = self.envelope(&voice, &workdir, fps, ctx).await?;
                let region = head.moving_region();
                tool = tool
                    .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size"])
                    .arg(format!("{}x{}", region.width, region.height))
                    .args(["-framerate", &fps.to_string(), "-i", "pipe:0"]);
                let overlay = format!(
                    "[bg][1:v]overlay=x={x}:y={y}:eof_action=repeat",
                    x = place.x + region.x,
                    y = place.y + region.y,
                );
                let feed = animation_feed(head, openness, frames, fps);
                (overlay, Some(feed), "builtin".to_owned())
            }
        };
        let video = workdir.join(VIDEO_FILE);
        // The frame sized and converted to BT.709 in one scale, as the
        // still path's `TO_BT709_YUV420` does, tagged as it is.
        let graph = format!(
            "[0:v]loop=loop=-1:size=1:start=0[bg];{overlay}[under];\
             [2:v]loop=loop=-1:size=1:start=0[over];[under][over]overlay=0:0,\
             scale={width}:{height}:out_color_matrix=bt709:out_range=tv,format=yuv420p[v]"
        );
        let t = format!("{duration:.6}");
        tool = tool
            .arg("-i")
            .arg(file_url(&parts.above))
            .arg("-i")
            .arg(file_url(&soundtrack))
            .args(["-filter_complex", &graph, "-map", "[v]", "-map", "3:a:0"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"])
            .args(["-r", &fps.to_string(), "-fps_mode", "cfr"])
            .args(BT709_TAGS)
            .args([
                "-c:a",
                "aac",
                "-b:a",
                &format!("{}k", self.settings.audio_bitrate_kbps),
            ])
            .args(["-t", &t, "-map_metadata", "-1", "-movflags", "+faststart"])
            .args(["-progress", "pipe:1", "-nostats", "-f", "mp4"])
            .arg(file_url(&video))
            .timeout(self.settings.timeout + std::time::Duration::from_secs_f64(duration * 8.0));
        let progress = |line: &str| {
            if let Some(us) = parse_out_time_us(line) {
                let done = (us / 1e6 / duration.max(0.001)).clamp(0.0, 1.0);
                ctx.set_progress(20 + (done * 79.0) as u8);
            }
        };
        let run = match feed {
            Some(feed) => tool.run_with_stdin(&ctx.cancel, progress, feed).await,
            None => tool.run(&ctx.cancel, progress).await,
        };
        let paths = [
            (parts.below.as_path(), "the frame"),
            (parts.above.as_path(), "the frame"),
            (soundtrack.as_path(), "the soundtrack"),
            (video.as_path(), "output"),
        ];
        crate::diagnostics::ffmpeg_outcome(run, &self.settings.ffmpeg, &paths).map_err(failure)?;

        let mut main = output_file(
            VIDEO_FILE,
            OutputRole::Main,
            OutputKind::Video,
            "video/mp4",
            video,
        );
        main.details = Some(json!({
            "talking_head": made_by,
            "duration_seconds": (duration * 1000.0).round() / 1000.0,
        }));
        Ok(vec![
            main,
            output_file(
                THUMBNAIL_FILE,
                OutputRole::Thumbnail,
                OutputKind::Image,
                "image/jpeg",
                parts.thumbnail,
            ),
            output_file(
                POSTER_FILE,
                OutputRole::Poster,
                OutputKind::Image,
                "image/jpeg",
                parts.poster,
            ),
        ])
    }

    /// The mouth's openness per frame, from the voice's loudness.
    async fn envelope(
        &self,
        voice: &Path,
        dir: &Path,
        fps: u32,
        ctx: &JobContext,
    ) -> Result<Vec<f32>, JobFailure> {
        let samples = self
            .mono_samples(voice, &dir.join("voice.f32"), ENVELOPE_RATE, ctx)
            .await?;
        Ok(openness_envelope(&samples, ENVELOPE_RATE, fps as f32))
    }
}

/// The video's size: the canvas, scaled so its long side fits, even.
fn output_size(template: &Template, max_long_side: u32) -> (u32, u32) {
    let (w, h) = (template.canvas.width, template.canvas.height);
    let scale = (f64::from(max_long_side) / f64::from(w.max(h))).min(1.0);
    let even = |side: u32| (((f64::from(side) * scale).round() as u32) / 2 * 2).max(2);
    (even(w), even(h))
}

/// Draws the parts: below and above the avatar's layer, the whole frame as
/// poster and thumbnail, and the avatar as the frame shows it.
fn draw_parts(
    template: &Template,
    fill: &Fill,
    fonts: &genq_template::Fonts,
    layer: usize,
    place: PixelBox,
    avatar_below: bool,
    dir: &Path,
) -> Result<Parts, JobFailure> {
    let drawing = drawing_failure;
    let write = |name: &str, bytes: Vec<u8>| -> Result<PathBuf, JobFailure> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| io_failure(name, e))?;
        Ok(path)
    };
    let whole = Scene::compose(template, fill, fonts).map_err(drawing)?;
    let long_side = whole.width.max(whole.height) as f32;
    let poster = write(POSTER_FILE, whole.jpeg(1.0).map_err(drawing)?)?;
    let thumbnail = write(
        THUMBNAIL_FILE,
        whole
            .jpeg((THUMBNAIL_LONG_SIDE / long_side).min(1.0))
            .map_err(drawing)?,
    )?;
    let mut under = template.clone();
    under
        .layers
        .truncate(if avatar_below { layer + 1 } else { layer });
    let below_scene = Scene::compose(&under, fill, fonts).map_err(drawing)?;
    let below = write("below.png", below_scene.png().map_err(drawing)?)?;
    let mut over = template.clone();
    over.layers = template.layers[layer + 1..].to_vec();
    over.canvas.background = "#00000000".into();
    let above = write(
        "above.png",
        Scene::compose(&over, fill, fonts)
            .map_err(drawing)?
            .png()
            .map_err(drawing)?,
    )?;
    let avatar = if avatar_below {
        let frame = below_scene.rgb(1.0).map_err(drawing)?;
        let width = place
            .width
            .min(frame.width().saturating_sub(place.x))
            .max(1);
        let height = place
            .height
            .min(frame.height().saturating_sub(place.y))
            .max(1);
        image::imageops::crop_imm(&frame, place.x, place.y, width, height).to_image()
    } else {
        RgbImage::new(1, 1)
    };
    Ok(Parts {
        below,
        above,
        poster,
        thumbnail,
        avatar,
    })
}

/// The talking-head model's input: the avatar and the voice as `data:`
/// URIs (the model server needs no route back to genq), and the request's
/// own model options.
async fn model_input(
    avatar: &genq_template::Picture,
    voice: &Path,
    options: &serde_json::Map<String, Value>,
) -> Result<Value, JobFailure> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let audio = tokio::fs::read(voice)
        .await
        .map_err(|e| io_failure("the voice", e))?;
    let mut input = options.clone();
    input.insert(
        "image".into(),
        json!(format!(
            "data:{};base64,{}",
            avatar.content_type(),
            b64.encode(avatar.bytes())
        )),
    );
    input.insert(
        "audio".into(),
        json!(format!("data:audio/mpeg;base64,{}", b64.encode(audio))),
    );
    Ok(Value::Object(input))
}

/// Writes the animation's frames to ffmpeg as they are made, on a blocking
/// thread; a stopped ffmpeg (done, failed or killed on cancel) stops it.
fn animation_feed(head: TalkingHead, openness: Vec<f32>, frames: usize, fps: u32) -> StdinFeed {
    Box::new(move |mut stdin| {
        Box::pin(async move {
            let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(FRAMES_BUFFERED);
            let region = head.moving_region();
            let size = (region.width * region.height * 3) as usize;
            let maker = tokio::task::spawn_blocking(move || {
                for i in 0..frames {
                    let mut frame = vec![0u8; size];
                    let open = openness.get(i).copied().unwrap_or(0.0);
                    head.frame(open, i as f32 / fps as f32, &mut frame);
                    if frames_tx.blocking_send(frame).is_err() {
                        break;
                    }
                }
            });
            let mut written = Ok(());
            while let Some(frame) = frames_rx.recv().await {
                if let Err(e) = stdin.write_all(&frame).await {
                    written = Err(e);
                    break;
                }
            }
            drop(frames_rx);
            let _ = maker.await;
            written?;
            stdin.shutdown().await
        })
    })
}
