//! The default encoder for a picture that never changes.
//!
//! libx264 encodes the frame once, as an IDR picture; every later frame is
//! a P slice that skips all its macroblocks ([`crate::h264`]), so the video
//! costs about the same whatever its length. The audio is transcoded at the
//! same time in its own ffmpeg, and [`crate::mp4`] puts both into the MP4
//! (ffmpeg does, should that refuse). The audio transcode is the floor of
//! any image + audio render, and is the longest step by far once the audio
//! lasts more than a few seconds, so it starts first, even before the probe
//! that checks the audio is done: each ffmpeg or ffprobe start costs ~0.06 s
//! of CPU and more of wall time on a busy machine.

use std::future::Future;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    encode_full, encode_timeout, parse_out_time_us, remove_quietly, AudioInput, Progress,
    RenderSettings, BT709_TAGS, MAX_PCT, PREPARED_PCT, TO_BT709_YUV420,
};
use crate::diagnostics::ffmpeg_outcome;
use crate::error::MediaError;
use crate::h264::{self, StillStream};
use crate::mp4;
use crate::probe::file_url;
use crate::process::{Tool, ToolError};

/// Hidden like the frame scratch: never listed with a job's outputs.
const VIDEO_SCRATCH: &str = ".still-video.h264";
const AUDIO_SCRATCH: &str = ".still-audio.m4a";

/// libx264's default keyframe interval at 25 fps (250 frames), which the
/// full encode has too: a player seeking decodes at most this much.
const KEYFRAME_INTERVAL_SECS: u64 = 10;

/// Progress is the video's share plus the audio's: the two run at once, and
/// a sum of two rising parts rises whichever reports first.
const IDR_PCT: u8 = 15;
const VIDEO_PCT: u8 = 20;
/// Up to here when both are done; the mux takes it to [`MAX_PCT`].
const AUDIO_SPAN: f64 = 70.0;

pub(crate) struct Output<'a> {
    /// The PPM that `prepare` writes.
    pub frame: &'a Path,
    pub video: &'a Path,
}

/// Encodes the frame that `prepare` writes to `out.frame`, held for the
/// duration that `duration` (the probe) finds, with `audio`, into
/// `out.video`; returns that duration and the frame size `prepare` gave.
///
/// `prepare` runs only once `duration` has succeeded, so a bad audio
/// upload fails before any image work, and its error wins over the audio
/// transcode's.
pub(crate) async fn encode<D, P>(
    duration: D,
    prepare: P,
    audio: &Path,
    out: Output<'_>,
    settings: &RenderSettings,
    progress: &mut Progress<'_>,
    cancel: &CancellationToken,
) -> Result<(f64, (u32, u32)), MediaError>
where
    D: Future<Output = Result<f64, MediaError>>,
    P: Future<Output = Result<(u32, u32), MediaError>>,
{
    let dir = out.video.parent().unwrap_or(Path::new("."));
    let (video_scratch, audio_scratch) = (dir.join(VIDEO_SCRATCH), dir.join(AUDIO_SCRATCH));
    let scratch = Scratch {
        video: &video_scratch,
        audio: &audio_scratch,
    };
    let sources = Sources {
        duration,
        prepare,
        audio,
    };
    let result = run(sources, &out, &scratch, settings, progress, cancel).await;
    remove_quietly(&video_scratch).await;
    remove_quietly(&audio_scratch).await;
    result
}

struct Scratch<'a> {
    video: &'a Path,
    audio: &'a Path,
}

struct Sources<'a, D, P> {
    duration: D,
    prepare: P,
    audio: &'a Path,
}

/// The colour tags [`idr_args`] gives libx264, for the MP4's `colr` box:
/// BT.709 primaries, transfer and matrix (1, 1, 1), limited range.
const COLOUR: (u16, u16, u16, bool) = (1, 1, 1, false);

enum Video {
    Extended((u32, u32), StillStream),
    /// libx264 wrote something [`h264`] can't extend.
    NeedsFullEncode((u32, u32)),
}

async fn run<D, P>(
    sources: Sources<'_, D, P>,
    out: &Output<'_>,
    scratch: &Scratch<'_>,
    settings: &RenderSettings,
    progress: &mut Progress<'_>,
    cancel: &CancellationToken,
) -> Result<(f64, (u32, u32)), MediaError>
where
    D: Future<Output = Result<f64, MediaError>>,
    P: Future<Output = Result<(u32, u32), MediaError>>,
{
    let Sources {
        duration,
        prepare,
        audio,
    } = sources;
    let (known_duration, duration_rx) = watch::channel(None);
    let tally = Mutex::new(Tally {
        progress,
        video: 0,
        audio: 0,
    });
    // Either side's failure stops the other, through the tools' own
    // kill-and-reap, so nothing outlives this call.
    let both = cancel.child_token();
    let video_side = async {
        // Not stopped by an audio transcode failure: the probe's verdict on
        // the audio is the clearer message.
        let secs = duration.await;
        let r = match secs {
            Ok(secs) => {
                known_duration.send_replace(Some(secs));
                video(prepare, secs, out, scratch, settings, &tally, &both).await
            }
            Err(e) => Err(e),
        };
        if !matches!(r, Ok(Video::Extended(..))) {
            both.cancel();
        }
        r
    };
    let audio_side = async {
        let r = transcode_audio(audio, scratch, settings, duration_rx, &tally, &both).await;
        if r.is_err() {
            both.cancel();
        }
        r
    };
    let (v, a) = tokio::join!(video_side, audio_side);
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    // A real failure, not the cancellation it caused on the other side.
    let v = match v {
        Err(e) if !matches!(e, MediaError::Cancelled) => return Err(e),
        v => v,
    };
    let a = match a {
        Err(e) if !matches!(e, MediaError::Cancelled) => return Err(e),
        a => a,
    };
    let mut tally = tally.into_inner().unwrap_or_else(PoisonError::into_inner);
    let video = v?;
    let secs = known_duration
        .borrow()
        .expect("the video side has the duration");
    match video {
        Video::Extended(size, stream) => {
            a?;
            write_mp4(stream, size, out, scratch, secs, settings, cancel).await?;
            tally.progress.report(MAX_PCT);
            Ok((secs, size))
        }
        Video::NeedsFullEncode(size) => {
            let span = f64::from(MAX_PCT - PREPARED_PCT);
            let progress = &mut tally.progress;
            let report = |frac: f64| progress.report(PREPARED_PCT + (frac * span).floor() as u8);
            let audio = AudioInput::File(audio);
            encode_full(out.frame, audio, out.video, secs, settings, cancel, report).await?;
            Ok((secs, size))
        }
    }
}

struct Tally<'p, 'a> {
    progress: &'p mut Progress<'a>,
    video: u8,
    audio: u8,
}

impl Tally<'_, '_> {
    fn set(tally: &Mutex<Self>, video: Option<u8>, audio_fraction: Option<f64>) {
        let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = video {
            t.video = t.video.max(v);
        }
        if let Some(f) = audio_fraction {
            t.audio = t.audio.max((f.clamp(0.0, 1.0) * AUDIO_SPAN).floor() as u8);
        }
        let pct = t.video + t.audio;
        t.progress.report(pct);
    }
}

async fn video<P>(
    prepare: P,
    duration_secs: f64,
    out: &Output<'_>,
    scratch: &Scratch<'_>,
    settings: &RenderSettings,
    tally: &Mutex<Tally<'_, '_>>,
    cancel: &CancellationToken,
) -> Result<Video, MediaError>
where
    P: Future<Output = Result<(u32, u32), MediaError>>,
{
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    let size = prepare.await?;
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    Tally::set(tally, Some(PREPARED_PCT), None);

    let fps = settings.fps.max(1);
    let frames = ((duration_secs * f64::from(fps)).round() as u64).max(1);
    let gop = KEYFRAME_INTERVAL_SECS * u64::from(fps);
    let run = Tool::new(&settings.ffmpeg)
        .args(idr_args(out.frame, scratch.video, fps, gop))
        .timeout(settings.timeout)
        .run(cancel, |_| {})
        .await;
    let paths = [(out.frame, "frame"), (scratch.video, "output")];
    ffmpeg_outcome(run, &settings.ffmpeg, &paths)?;
    let idr = tokio::fs::read(scratch.video).await?;
    Tally::set(tally, Some(IDR_PCT), None);

    match h264::still_stream(&idr, frames, gop) {
        Ok(stream) => {
            Tally::set(tally, Some(VIDEO_PCT), None);
            Ok(Video::Extended(size, stream))
        }
        Err(e) => {
            tracing::warn!(reason = %e, "encoding every frame instead");
            Ok(Video::NeedsFullEncode(size))
        }
    }
}

/// One IDR picture as a raw H.264 stream, in a form [`h264`] can extend:
/// CAVLC (skip slices are trivial in it; CABAC would cost a few percent on
/// this one frame only), no B-frames (so POC follows frame_num), one
/// reference, no weighted prediction. Otherwise as the full encode.
fn idr_args(frame: &Path, out: &Path, fps: u32, gop: u64) -> Vec<std::ffi::OsString> {
    let fps = fps.to_string();
    let x264 = format!("keyint={gop}:scenecut=0:bframes=0:ref=1:weightp=0:cabac=0");
    let mut args = os(&["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    args.extend(os(&["-f", "ppm_pipe", "-framerate", &fps, "-i"]));
    args.push(file_url(frame));
    args.extend(os(&[
        "-vf",
        TO_BT709_YUV420,
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        // One frame gains nothing from threads but pays for setting them up.
        "-threads",
        "1",
        "-preset",
        "veryfast",
        "-tune",
        "stillimage",
        "-x264-params",
        &x264,
        "-pix_fmt",
        "yuv420p",
        "-r",
        &fps,
    ]));
    args.extend(os(&BT709_TAGS));
    args.extend(os(&["-f", "h264"]));
    args.push(file_url(out));
    args
}

/// The whole audio stream to AAC. It starts before the probe has said how
/// long the audio is (`duration`, filled in later), so an audio longer than
/// that is cut afterwards, as the full encode cuts it: by [`mux`], to which
/// [`mp4::write`] leaves such audio.
async fn transcode_audio(
    audio: &Path,
    scratch: &Scratch<'_>,
    settings: &RenderSettings,
    duration: watch::Receiver<Option<f64>>,
    tally: &Mutex<Tally<'_, '_>>,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    let mut args = os(&["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"]);
    args.push(file_url(audio));
    let bitrate = format!("{}k", settings.audio_bitrate_kbps.max(8));
    args.extend(os(&["-map", "0:a:0", "-c:a", "aac", "-b:a", &bitrate]));
    // The upload's tags stay out of the audio track's boxes, which the MP4
    // reuses.
    args.extend(os(&["-map_metadata", "-1", "-map_chapters", "-1"]));
    args.extend(os(&["-f", "mp4", "-progress", "pipe:1", "-nostats"]));
    args.push(file_url(scratch.audio));

    // The usual timeout depends on the length, which the probe tells only
    // later: a watchdog applies it from then on, from the same start.
    let started = Instant::now();
    let stop = cancel.child_token();
    let progress_duration = duration.clone();
    let run = Tool::new(&settings.ffmpeg)
        .args(args)
        .timeout(encode_timeout(settings, 24.0 * 3600.0))
        .run(&stop, |line| {
            let secs = *progress_duration.borrow();
            if let (Some(us), Some(secs)) = (parse_out_time_us(line), secs) {
                Tally::set(tally, None, Some(us / (secs * 1e6)));
            }
        });
    let watchdog = async {
        let mut duration = duration;
        let secs = duration
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|s| *s);
        // No duration means the probe failed, which stops this transcode.
        let Some(secs) = secs else {
            return std::future::pending().await;
        };
        let after = encode_timeout(settings, secs);
        tokio::time::sleep_until((started + after).into()).await;
        after
    };
    tokio::pin!(run);
    let result = tokio::select! {
        r = &mut run => r,
        after = watchdog => {
            stop.cancel();
            match run.await {
                Err(ToolError::Cancelled { program }) => Err(ToolError::Timeout { program, after }),
                r => r,
            }
        }
    };
    let paths = [(scratch.audio, "output"), (audio, "audio")];
    ffmpeg_outcome(result, &settings.ffmpeg, &paths)
}

/// [`mp4::write`], or [`mux`] for what that refuses.
async fn write_mp4(
    stream: StillStream,
    (width, height): (u32, u32),
    out: &Output<'_>,
    scratch: &Scratch<'_>,
    duration_secs: f64,
    settings: &RenderSettings,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    let fps = settings.fps.max(1);
    // Audio longer than that must be cut, which only ffmpeg does.
    let max_audio_secs = duration_secs + 1.0 / f64::from(fps);
    let (video_file, audio_file) = (out.video.to_owned(), scratch.audio.to_owned());
    let (stream, written) = tokio::task::spawn_blocking(move || {
        let video = mp4::Video {
            stream: &stream,
            width,
            height,
            fps,
            colour: COLOUR,
        };
        let written = mp4::write(&video_file, &video, &audio_file, max_audio_secs);
        (stream, written)
    })
    .await
    .map_err(|e| MediaError::Render(format!("internal error while writing the video: {e}")))?;
    match written {
        Ok(()) => Ok(()),
        Err(mp4::MuxError::Io(e)) => Err(e.into()),
        Err(mp4::MuxError::Unsupported(why)) => {
            tracing::warn!(reason = %why, "letting ffmpeg mux instead");
            tokio::fs::write(scratch.video, stream.annex_b()).await?;
            mux(out, scratch, duration_secs, settings, cancel).await
        }
    }
}

/// Copies both streams into the MP4. The raw stream has no timestamps:
/// `-framerate` gives each frame its 1/fps, and `+genpts` has them written
/// rather than left for the muxer to guess.
async fn mux(
    out: &Output<'_>,
    scratch: &Scratch<'_>,
    duration_secs: f64,
    settings: &RenderSettings,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    let fps = settings.fps.max(1);
    let rate = fps.to_string();
    // What ffmpeg picks itself when it encodes (fps × 512), instead of the
    // raw demuxer's 1/1200000.
    let timescale = (u64::from(fps) * 512).to_string();
    let mut args = os(&["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    args.extend(os(&[
        "-fflags",
        "+genpts",
        "-f",
        "h264",
        "-framerate",
        &rate,
    ]));
    args.push("-i".into());
    args.push(file_url(scratch.video));
    // Only an audio longer than the probe said is cut (to whole AAC
    // frames); the video already has the probed length.
    let t = format!("{duration_secs:.6}");
    args.extend(os(&["-t", &t, "-i"]));
    args.push(file_url(scratch.audio));
    args.extend(os(&["-map", "0:v:0", "-map", "1:a:0", "-c", "copy"]));
    // Uploaded files' tags (encoder, names, locations) have no business in
    // the published video.
    args.extend(os(&["-map_metadata", "-1", "-map_chapters", "-1"]));
    args.extend(os(&["-video_track_timescale", &timescale]));
    args.extend(os(&["-movflags", "+faststart", "-f", "mp4"]));
    args.push(file_url(out.video));

    let run = Tool::new(&settings.ffmpeg)
        .args(args)
        .timeout(encode_timeout(settings, duration_secs))
        .run(cancel, |_| {})
        .await;
    let paths = [
        (scratch.video, "video"),
        (scratch.audio, "audio"),
        (out.video, "output"),
    ];
    ffmpeg_outcome(run, &settings.ffmpeg, &paths)
}

fn os(items: &[&str]) -> Vec<std::ffi::OsString> {
    items.iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests;
