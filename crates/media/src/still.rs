//! Still image + audio → MP4, plus poster and thumbnail JPEGs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::diagnostics::{ffmpeg_outcome, summarize_stderr, tool_error};
use crate::error::MediaError;
use crate::frame;
use crate::probe::{file_url, probe};
use crate::process::{Tool, ToolError};

mod fast;

pub(crate) const VIDEO_FILE: &str = "video.mp4";
pub(crate) const THUMBNAIL_FILE: &str = "thumbnail.jpg";
pub(crate) const POSTER_FILE: &str = "poster.jpg";
/// Hidden so a directory listing of finished jobs never shows it, even if a
/// crash skips the cleanup.
const FRAME_SCRATCH: &str = ".still-frame.ppm";

pub(crate) const POSTER_QUALITY: u8 = 85;
pub(crate) const THUMBNAIL_QUALITY: u8 = 80;

/// Progress reported once the frame is ready; ffmpeg's share is the rest.
pub(crate) const PREPARED_PCT: u8 = 5;
/// 100 means "done" and is the caller's to report, after it has stored the
/// outputs.
pub(crate) const MAX_PCT: u8 = 99;

#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Frames larger than this are scaled down (aspect kept).
    pub max_long_side: u32,
    /// Transparent images are composited onto this colour.
    pub background: [u8; 3],
    pub fps: u32,
    pub audio_bitrate_kbps: u32,
    pub thumbnail_long_side: u32,
    /// Base limit; ffmpeg gets this plus 4× the audio's duration, and ffprobe
    /// gets this alone.
    pub timeout: Duration,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            max_long_side: 1920,
            background: [0, 0, 0],
            fps: 25,
            audio_bitrate_kbps: 192,
            thumbnail_long_side: 320,
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StillVideo {
    pub video: PathBuf,
    pub thumbnail: PathBuf,
    pub poster: PathBuf,
    /// The audio's probed duration, which the video matches within a frame.
    pub duration_secs: f64,
    pub width: u32,
    pub height: u32,
}

/// Renders `image` shown for the whole of `audio` into `out_dir`
/// (`video.mp4`, `poster.jpg`, `thumbnail.jpg`).
///
/// The picture is encoded once and every later frame says "nothing
/// changed" (see [`fast`]), with the audio transcoded alongside; a stream
/// that can't be extended that way falls back to
/// [`render_still_video_full_encode`].
///
/// `progress` receives strictly rising values in 0..=99. On error no output
/// files are left behind.
pub async fn render_still_video(
    image: &Path,
    audio: &Path,
    out_dir: &Path,
    settings: &RenderSettings,
    progress: &(dyn Fn(u8) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<StillVideo, MediaError> {
    let job = Job {
        image,
        audio,
        out_dir,
        settings,
        cancel,
    };
    cleaning_up(out_dir, job.render(true, &mut Progress::new(progress))).await
}

/// [`render_still_video`] with libx264 encoding every frame: what a video
/// whose picture moves needs, and the reference the fast path is checked
/// against.
pub async fn render_still_video_full_encode(
    image: &Path,
    audio: &Path,
    out_dir: &Path,
    settings: &RenderSettings,
    progress: &(dyn Fn(u8) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<StillVideo, MediaError> {
    let job = Job {
        image,
        audio,
        out_dir,
        settings,
        cancel,
    };
    cleaning_up(out_dir, job.render(false, &mut Progress::new(progress))).await
}

/// Awaits `render`, then removes the scratch files, and the outputs too if
/// it failed.
async fn cleaning_up(
    out_dir: &Path,
    render: impl std::future::Future<Output = Result<StillVideo, MediaError>>,
) -> Result<StillVideo, MediaError> {
    let result = render.await;
    remove_quietly(&out_dir.join(FRAME_SCRATCH)).await;
    if result.is_err() {
        for name in [VIDEO_FILE, POSTER_FILE, THUMBNAIL_FILE] {
            remove_quietly(&out_dir.join(name)).await;
        }
    }
    result
}

struct Job<'a> {
    image: &'a Path,
    audio: &'a Path,
    out_dir: &'a Path,
    settings: &'a RenderSettings,
    cancel: &'a CancellationToken,
}

impl Job<'_> {
    async fn render(
        &self,
        fast: bool,
        progress: &mut Progress<'_>,
    ) -> Result<StillVideo, MediaError> {
        let (settings, cancel) = (self.settings, self.cancel);
        let video = self.out_dir.join(VIDEO_FILE);
        let poster = self.out_dir.join(POSTER_FILE);
        let thumbnail = self.out_dir.join(THUMBNAIL_FILE);
        let frame = self.out_dir.join(FRAME_SCRATCH);
        // Audio first: it is cheap to check and decides the duration, so a
        // bad upload fails before any image work (`prepare` is awaited only
        // once `duration` has succeeded; the fast path transcodes the audio
        // meanwhile).
        let duration = audio_duration(settings, self.audio, cancel);
        let prepare = prepare_frame(self.image, &frame, &poster, &thumbnail, settings);
        let (duration_secs, (width, height)) = if fast {
            let out = fast::Output {
                frame: &frame,
                video: &video,
            };
            fast::encode(
                duration, prepare, self.audio, out, settings, progress, cancel,
            )
            .await?
        } else {
            let duration_secs = duration.await?;
            if cancel.is_cancelled() {
                return Err(MediaError::Cancelled);
            }
            let audio = AudioInput::File(self.audio);
            let size = prepare.await?;
            if cancel.is_cancelled() {
                return Err(MediaError::Cancelled);
            }
            progress.report(PREPARED_PCT);
            let span = f64::from(MAX_PCT - PREPARED_PCT);
            encode_full(
                &frame,
                audio,
                &video,
                duration_secs,
                settings,
                cancel,
                |frac| progress.report(PREPARED_PCT + (frac * span).floor() as u8),
            )
            .await?;
            (duration_secs, size)
        };

        Ok(StillVideo {
            video,
            thumbnail,
            poster,
            duration_secs,
            width,
            height,
        })
    }
}

/// Decodes and normalises `image`, then writes the PPM `frame` the encoder
/// reads, the poster and the thumbnail; returns the frame's size.
async fn prepare_frame(
    image: &Path,
    frame: &Path,
    poster: &Path,
    thumbnail: &Path,
    settings: &RenderSettings,
) -> Result<(u32, u32), MediaError> {
    let (image, frame_file) = (image.to_owned(), frame.to_owned());
    let (poster, thumbnail) = (poster.to_owned(), thumbnail.to_owned());
    let (max_long, bg, thumb_long) = (
        settings.max_long_side,
        settings.background,
        settings.thumbnail_long_side,
    );
    tokio::task::spawn_blocking(move || -> Result<(u32, u32), MediaError> {
        let frame = frame::load_normalized(&image, max_long, bg)?;
        frame::write_ppm(&frame, &frame_file)?;
        frame::write_jpeg(&frame, &poster, POSTER_QUALITY)?;
        frame::write_jpeg(
            &frame::shrink(&frame, thumb_long),
            &thumbnail,
            THUMBNAIL_QUALITY,
        )?;
        Ok(frame.dimensions())
    })
    .await
    .map_err(|e| MediaError::Render(format!("internal error while preparing the image: {e}")))?
}

/// Base timeout plus 4× the media's duration: encoding is usually far
/// faster than real time, but a loaded machine shouldn't fail long jobs.
pub(crate) fn encode_timeout(settings: &RenderSettings, duration_secs: f64) -> Duration {
    settings
        .timeout
        .saturating_add(Duration::try_from_secs_f64(4.0 * duration_secs).unwrap_or(Duration::MAX))
}

/// One ffmpeg run of [`ffmpeg_args`]: libx264 encodes every frame.
/// `on_fraction` gets the share of `duration_secs` done so far.
pub(crate) async fn encode_full(
    frame: &Path,
    audio: AudioInput<'_>,
    video: &Path,
    duration_secs: f64,
    settings: &RenderSettings,
    cancel: &CancellationToken,
    mut on_fraction: impl FnMut(f64) + Send,
) -> Result<(), MediaError> {
    let fps = settings.fps.max(1);
    let audio_path = match audio {
        AudioInput::File(p) => Some(p),
        AudioInput::Silence => None,
    };
    let total_us = duration_secs * 1e6;
    let ffmpeg = Tool::new(&settings.ffmpeg)
        .args(ffmpeg_args(
            frame,
            audio,
            video,
            duration_secs,
            fps,
            settings,
        ))
        .timeout(encode_timeout(settings, duration_secs));
    let run = ffmpeg
        .run(cancel, |line| {
            if let Some(us) = parse_out_time_us(line) {
                on_fraction((us / total_us).clamp(0.0, 1.0));
            }
        })
        .await;
    let mut paths = vec![(frame, "frame"), (video, "output")];
    paths.extend(audio_path.map(|p| (p, "audio")));
    ffmpeg_outcome(run, &settings.ffmpeg, &paths)
}

/// The duration the video must match; any reason not to trust the audio
/// becomes `InvalidAudio`.
async fn audio_duration(
    settings: &RenderSettings,
    audio: &Path,
    cancel: &CancellationToken,
) -> Result<f64, MediaError> {
    let info = match probe(&settings.ffprobe, audio, settings.timeout, cancel).await {
        Ok(info) => info,
        Err(ToolError::Failed { stderr_tail, .. }) => {
            let reason = summarize_stderr(&stderr_tail, &[(audio, "audio")]);
            return Err(MediaError::InvalidAudio(reason));
        }
        Err(ToolError::InvalidOutput { reason, .. }) => {
            return Err(MediaError::InvalidAudio(format!(
                "ffprobe could not describe it ({reason})"
            )))
        }
        Err(e) => return Err(tool_error(e, &settings.ffprobe)),
    };
    let stream = info
        .first_audio()
        .ok_or_else(|| MediaError::InvalidAudio("the file contains no audio stream".into()))?;
    // The stream's own duration is the one that matters when a container
    // also holds a longer video or cover-art track.
    let duration = stream
        .duration
        .filter(|d| *d > 0.0)
        .or(info.duration)
        .ok_or_else(|| MediaError::InvalidAudio("its duration is unknown".into()))?;
    if duration <= 0.0 {
        return Err(MediaError::InvalidAudio(
            "it has no length (0 seconds)".into(),
        ));
    }
    Ok(duration)
}

/// Where the video's sound comes from.
#[derive(Clone, Copy)]
pub(crate) enum AudioInput<'a> {
    File(&'a Path),
    /// A silent track, so players treat the video like those with sound.
    Silence,
}

/// Encodes the PPM `frame`, held for `duration_secs`, with `audio`: shared by
/// every renderer of still pictures so they all produce the same kind of MP4.
pub(crate) fn ffmpeg_args(
    frame: &Path,
    audio: AudioInput<'_>,
    video: &Path,
    duration_secs: f64,
    fps: u32,
    settings: &RenderSettings,
) -> Vec<OsString> {
    let fps = fps.to_string();
    let mut args: Vec<OsString> = Vec::new();
    fn push(args: &mut Vec<OsString>, items: &[&str]) {
        args.extend(items.iter().map(OsString::from));
    }
    push(
        &mut args,
        &["-nostdin", "-hide_banner", "-loglevel", "error", "-y"],
    );
    // ppm_pipe reads the file as a stream, so a '%' in the path is never
    // taken as an image-sequence pattern the way image2 would.
    push(&mut args, &["-f", "ppm_pipe", "-framerate", &fps, "-i"]);
    args.push(file_url(frame));
    match audio {
        AudioInput::File(audio) => {
            args.push("-i".into());
            args.push(file_url(audio));
        }
        AudioInput::Silence => push(
            &mut args,
            &["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"],
        ),
    }
    push(&mut args, &["-map", "0:v:0", "-map", "1:a:0"]);
    // Convert to yuv420p once and then repeat that single frame, rather than
    // `-loop 1` re-reading and re-converting the image for every frame
    // (measured ~40% faster at 1080p). BT.709 matches what players assume
    // for untagged HD; the tags below make it explicit.
    let convert_once = format!("{TO_BT709_YUV420},loop=loop=-1:size=1:start=0");
    push(&mut args, &["-vf", &convert_once]);
    push(
        &mut args,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "stillimage",
            "-pix_fmt",
            "yuv420p",
            "-r",
            &fps,
            "-fps_mode",
            "cfr",
        ],
    );
    push(&mut args, &BT709_TAGS);
    let bitrate = format!("{}k", settings.audio_bitrate_kbps.max(8));
    push(&mut args, &["-c:a", "aac", "-b:a", &bitrate]);
    // `-t` rather than `-shortest`: the latter overshoots by the muxer's
    // interleaving buffer, often seconds.
    let t = format!("{duration_secs:.6}");
    push(&mut args, &["-t", &t]);
    // Uploaded files' tags (encoder, names, locations) have no business in
    // the published video.
    push(&mut args, &["-map_metadata", "-1", "-map_chapters", "-1"]);
    push(&mut args, &["-movflags", "+faststart", "-f", "mp4"]);
    push(&mut args, &["-progress", "pipe:1", "-nostats"]);
    args.push(file_url(video));
    args
}

/// RGB to the limited-range BT.709 YUV that players assume for untagged HD
/// (ffmpeg's default matrix for RGB input is BT.601).
pub(crate) const TO_BT709_YUV420: &str = "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p";
/// The colour tags that say so in the stream (for the MP4's `colr` box).
pub(crate) const BT709_TAGS: [&str; 8] = [
    "-colorspace",
    "bt709",
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-color_range",
    "tv",
];

/// ffmpeg 5.1 prints both `out_time_us` and (misnamed) `out_time_ms` in
/// microseconds; either may be "N/A" before the first frame.
pub(crate) fn parse_out_time_us(line: &str) -> Option<f64> {
    let (key, value) = line.split_once('=')?;
    if key != "out_time_us" && key != "out_time_ms" {
        return None;
    }
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(crate) async fn remove_quietly(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove file"),
    }
}

/// Keeps reported values strictly rising whatever order ffmpeg's numbers
/// arrive in.
pub(crate) struct Progress<'a> {
    sink: &'a (dyn Fn(u8) + Send + Sync),
    last: Option<u8>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(sink: &'a (dyn Fn(u8) + Send + Sync)) -> Self {
        Progress { sink, last: None }
    }

    pub(crate) fn report(&mut self, pct: u8) {
        let pct = pct.min(MAX_PCT);
        if self.last.is_none_or(|last| pct > last) {
            self.last = Some(pct);
            (self.sink)(pct);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_lines() {
        assert_eq!(parse_out_time_us("out_time_us=2507755"), Some(2_507_755.0));
        assert_eq!(parse_out_time_us("out_time_ms=100"), Some(100.0));
        assert_eq!(parse_out_time_us("out_time_us=N/A"), None);
        assert_eq!(parse_out_time_us("out_time=00:00:02.50"), None);
        assert_eq!(parse_out_time_us("frame=3"), None);
    }

    #[test]
    fn progress_only_rises_and_stops_at_99() {
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |p: u8| seen.lock().unwrap().push(p);
        let mut p = Progress::new(&sink);
        for v in [5, 5, 3, 40, 39, 120, 100] {
            p.report(v);
        }
        assert_eq!(*seen.lock().unwrap(), [5, 40, 99]);
    }
}
