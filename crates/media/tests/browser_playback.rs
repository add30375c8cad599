//! The still renderer's MP4 played by a real headless Chromium: ffprobe
//! (see `still_stream.rs`) says what the file holds, but only a browser
//! says whether it plays. The fast path writes its own H.264 skip slices
//! and its own MP4 boxes, so a browser's demuxer and decoder are the ones
//! that must accept them.
//!
//! The test serves the MP4 and a page from an HTTP server on 127.0.0.1
//! (tower-http's `ServeDir`, which answers the Range requests Chromium's
//! media stack makes), starts Chromium on the page, and the page POSTs its
//! findings back to `/result`: no driver, no DevTools protocol.
//!
//! Needs `/usr/bin/chromium` (`scripts/deps --test`); `GENQ_TEST_BROWSER=off`
//! skips these tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::*;
use genq_media::{render_still_video, render_still_video_full_encode, RenderSettings, StillVideo};
use image::{Rgb, RgbImage};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: f64 = 25.0;
/// Both renderers put an IDR every 10 s (libx264's default 250 frames).
const KEYFRAME_SECS: f64 = 10.0;

/// Four flat quadrants, so the decoded picture can be checked at known
/// points. Mid-range colours: a saturated primary would be clipped by the
/// YUV round trip and hide a wrong colour matrix.
const QUADRANTS: [[u8; 3]; 4] = [
    [200, 40, 40],   // top left
    [40, 180, 60],   // top right
    [40, 60, 200],   // bottom left
    [220, 220, 220], // bottom right
];

/// Per-channel slack for H.264 at x264's quality plus the YUV 4:2:0 round
/// trip; a wrong quadrant or a grey/green concealment frame is off by far
/// more.
const PIXEL_TOLERANCE: i32 = 24;

/// One browser at a time: two real-time playbacks on a loaded 2-core
/// machine drop frames and make the counts meaningless.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The page. It plays `?src=` muted (autoplay needs no gesture then, even
/// without the flag), counts presented frames with
/// `requestVideoFrameCallback`, samples the quadrant centres of the last
/// frame from a canvas, optionally seeks to `?seek=` and samples again, and
/// POSTs everything. A 5 s stall also reports, so a broken file fails fast
/// with what the element knew.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<video id="v" muted playsinline preload="auto"></video>
<canvas id="c"></canvas>
<script>
const q = new URLSearchParams(location.search);
const v = document.getElementById('v');
const c = document.getElementById('c');
const r = { events: [], presented: 0, maxMediaTime: null, ended: false };
const points = JSON.parse(q.get('points'));
let done = false, lastProgress = performance.now(), lastTime = -1, started = 0;

function sample() {
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  return points.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
}
function post(why) {
  if (done) return;
  done = true;
  r.why = why;
  r.duration = v.duration; r.currentTime = v.currentTime;
  r.videoWidth = v.videoWidth; r.videoHeight = v.videoHeight;
  r.readyState = v.readyState; r.networkState = v.networkState;
  r.error = v.error ? { code: v.error.code, message: v.error.message } : null;
  const pq = v.getVideoPlaybackQuality();
  r.totalVideoFrames = pq.totalVideoFrames; r.droppedVideoFrames = pq.droppedVideoFrames;
  r.audioBytes = v.webkitAudioDecodedByteCount; r.videoBytes = v.webkitVideoDecodedByteCount;
  r.playSecs = started ? (performance.now() - started) / 1000 : null;
  fetch('/result', { method: 'POST', body: JSON.stringify(r) });
}
function onFrame(now, meta) {
  r.presented++;
  r.maxMediaTime = Math.max(r.maxMediaTime ?? 0, meta.mediaTime);
  if (!r.ended) v.requestVideoFrameCallback(onFrame);
}
for (const e of ['loadedmetadata', 'canplay', 'playing', 'waiting', 'stalled', 'ended', 'error'])
  v.addEventListener(e, () => r.events.push(e + '@' + v.currentTime.toFixed(3)));
v.addEventListener('timeupdate', () => {
  if (v.currentTime !== lastTime) { lastTime = v.currentTime; lastProgress = performance.now(); }
});
v.addEventListener('error', () => post('error'));
v.addEventListener('ended', () => {
  r.ended = true; r.endedAt = v.currentTime;
  r.finalPixels = sample();
  const seek = parseFloat(q.get('seek'));
  if (isNaN(seek)) return post('ended');
  // The decoder's frame count before and after the seek says where it
  // started decoding: at the keyframe before the target, if the MP4 marks
  // one there. A paused element presents the seeked-to frame, possibly
  // before `seeked` fires, so its callback is asked for first; the timer
  // is for a frame that never comes.
  const before = v.getVideoPlaybackQuality().totalVideoFrames;
  let seeked = false, presented = false;
  const take = (how) => {
    if (done || !seeked || !(presented || how === 'timer')) return;
    r.seekedTo = v.currentTime; r.seekPixels = sample(); r.seekFrame = how;
    r.seekDecoded = v.getVideoPlaybackQuality().totalVideoFrames - before;
    post('seeked');
  };
  v.requestVideoFrameCallback(() => { presented = true; take('frame-callback'); });
  v.addEventListener('seeked', () => {
    seeked = true; take('frame-callback'); setTimeout(() => take('timer'), 2000);
  }, { once: true });
  v.currentTime = seek;
});
setInterval(() => { if (!r.ended && performance.now() - lastProgress > 5000) post('stalled'); }, 250);
v.requestVideoFrameCallback(onFrame);
v.src = q.get('src');
v.play().then(() => { started = performance.now(); }, (e) => { r.playError = String(e); post('play-rejected'); });
</script>
"#;

/// What the page reports; `None` where JavaScript had NaN or no value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    why: String,
    events: Vec<String>,
    duration: Option<f64>,
    current_time: Option<f64>,
    ended: bool,
    ended_at: Option<f64>,
    video_width: u32,
    video_height: u32,
    error: Option<serde_json::Value>,
    play_error: Option<String>,
    /// Frames handed to the compositor (`requestVideoFrameCallback`).
    presented: u64,
    /// The latest presented frame's timestamp in the media.
    max_media_time: Option<f64>,
    total_video_frames: u64,
    dropped_video_frames: u64,
    audio_bytes: Option<u64>,
    video_bytes: Option<u64>,
    play_secs: Option<f64>,
    final_pixels: Option<Vec<[u8; 3]>>,
    seeked_to: Option<f64>,
    seek_pixels: Option<Vec<[u8; 3]>>,
    /// Frames the decoder went through to reach the seek target.
    seek_decoded: Option<u64>,
}

/// Quadrant centres, in the order of [`QUADRANTS`].
fn sample_points() -> Vec<[u32; 2]> {
    let (w, h) = (WIDTH / 4, HEIGHT / 4);
    vec![[w, h], [3 * w, h], [w, 3 * h], [3 * w, 3 * h]]
}

fn quadrant_png(dir: &Path) -> PathBuf {
    let img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let i = usize::from(x >= WIDTH / 2) + 2 * usize::from(y >= HEIGHT / 2);
        Rgb(QUADRANTS[i])
    });
    let path = dir.join("quadrants.png");
    img.save(&path).unwrap();
    path
}

/// Everything wrong with a playback of a `secs`-long video; empty when
/// the browser played it whole and showed the picture.
fn problems(r: &Report, secs: f64) -> Vec<String> {
    let mut p = Vec::new();
    let frames = (secs * FPS).round();
    if let Some(e) = &r.error {
        p.push(format!("MediaError {e}"));
    }
    if let Some(e) = &r.play_error {
        p.push(format!("play() rejected: {e}"));
    }
    if !r.ended {
        p.push(format!(
            "`ended` never fired (page reported on {:?})",
            r.why
        ));
    }
    match r.duration {
        Some(d) if (d - secs).abs() <= 1.5 / FPS => {}
        d => p.push(format!("duration {d:?}, expected {secs:.3}")),
    }
    match r.ended_at.or(r.current_time) {
        Some(t) if r.ended && (t - secs).abs() <= 1.5 / FPS => {}
        t => p.push(format!("currentTime at end {t:?}, expected {secs:.3}")),
    }
    if (r.video_width, r.video_height) != (WIDTH, HEIGHT) {
        p.push(format!("size {}x{}", r.video_width, r.video_height)); // the SPS crop
    }
    // Decoded: every frame goes through the decoder, dropped or not; a
    // few may be missing at the end of a stream cut off by `ended`.
    if (r.total_video_frames as f64) < frames - 3.0 {
        p.push(format!(
            "{} frames decoded of {frames}",
            r.total_video_frames
        ));
    }
    // Presented: a loaded machine drops some, but a stream the decoder
    // chokes on after the IDR shows a handful at most.
    if r.presented < 10 || (r.presented as f64) < frames / 3.0 {
        p.push(format!("{} frames presented of {frames}", r.presented));
    }
    if r.dropped_video_frames as f64 > frames / 2.0 {
        p.push(format!(
            "{} of {frames} frames dropped",
            r.dropped_video_frames
        ));
    }
    match r.max_media_time {
        Some(t) if t >= secs - 0.5 => {}
        t => p.push(format!("last presented frame at {t:?}s of {secs:.3}s")),
    }
    if r.audio_bytes.unwrap_or(0) == 0 {
        p.push("no audio decoded".into());
    }
    if r.video_bytes.unwrap_or(0) == 0 {
        p.push("no video decoded".into());
    }
    check_pixels(&mut p, "last frame", r.final_pixels.as_deref());
    if !p.is_empty() {
        p.push(format!("element events: {:?}", r.events));
    }
    p
}

/// What a seek to `to` should have done: land there, show the picture,
/// and decode from the keyframe at or before it (keyframes every
/// `keyframe_secs`), not from the start of the stream.
fn seek_problems(r: &Report, to: f64, keyframe_secs: f64) -> Vec<String> {
    let mut p = Vec::new();
    match r.seeked_to {
        Some(t) if (t - to).abs() <= 1.0 / FPS => {}
        t => p.push(format!("seeked to {t:?}, asked for {to}")),
    }
    check_pixels(&mut p, "frame after the seek", r.seek_pixels.as_deref());
    let from_keyframe = ((to % keyframe_secs) * FPS).round() + 1.0;
    match r.seek_decoded {
        // Chromium decodes a few frames past the target; far fewer would
        // mean it started on a frame that isn't a keyframe, far more that
        // it started from the stream's first one.
        Some(n) if (n as f64) >= from_keyframe - 2.0 && (n as f64) <= from_keyframe + 10.0 => {}
        n => p.push(format!(
            "seek decoded {n:?} frames; from the keyframe it needs {from_keyframe}"
        )),
    }
    p
}

fn check_pixels(p: &mut Vec<String>, what: &str, got: Option<&[[u8; 3]]>) {
    let Some(got) = got else {
        p.push(format!("{what}: not sampled"));
        return;
    };
    for (i, (g, want)) in got.iter().zip(QUADRANTS).enumerate() {
        let off = g
            .iter()
            .zip(want)
            .map(|(&a, b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap();
        if off > PIXEL_TOLERANCE {
            p.push(format!("{what}: quadrant {i} is {g:?}, expected {want:?}"));
        }
    }
}

/// `None` (after saying so) when the tests are switched off; panics with
/// the fix when Chromium is missing.
fn chromium() -> Option<&'static str> {
    if std::env::var("GENQ_TEST_BROWSER").as_deref() == Ok("off") {
        eprintln!("GENQ_TEST_BROWSER=off: skipping the Chromium playback test");
        return None;
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `scripts/deps --test` to install Chromium \
         (or set GENQ_TEST_BROWSER=off to skip the browser playback tests)"
    );
    Some(CHROMIUM)
}

/// Kills Chromium's whole process group (browser, zygote, renderer, GPU
/// and utility processes) however the test ends, panics included.
struct Browser {
    child: tokio::process::Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: killpg only sends a signal; the group is the one the
            // child leads, set up by `process_group(0)` at spawn.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Serves `dir` and plays `dir/video.mp4` in headless Chromium, returning
/// the page's report, or an error with Chromium's stderr when none came
/// within the video's length plus slack.
async fn play(browser: &str, dir: &Path, secs: f64, seek: Option<f64>) -> Result<Report, String> {
    let _one_at_a_time = BROWSER.lock().await;
    std::fs::write(dir.join("index.html"), PAGE).unwrap();
    let (tx, mut rx) = mpsc::channel::<String>(1);
    let app = Router::new()
        .route(
            "/result",
            post(
                |State(tx): State<mpsc::Sender<String>>, body: String| async move {
                    let _ = tx.send(body).await;
                },
            ),
        )
        .with_state(tx)
        .fallback_service(ServeDir::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let points = serde_json::to_string(&sample_points()).unwrap();
    let mut url = format!("http://{addr}/index.html?src=video.mp4&points={points}");
    if let Some(s) = seek {
        url.push_str(&format!("&seek={s}"));
    }
    let profile = tempfile::tempdir().unwrap();
    let stderr_path = profile.path().join("chromium.stderr");
    let started = Instant::now();
    let child = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            // Without these Chromium keeps dialling Google on a machine
            // with no way out.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            // A background tab's media and timers are throttled; headless
            // has no visible tab to be in front.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {browser}: {e}"))?;
    let browser_guard = Browser { child };

    let limit = Duration::from_secs_f64(secs + 30.0);
    let body = tokio::time::timeout(limit, rx.recv()).await;
    drop(browser_guard);
    server.abort();
    eprintln!(
        "chromium: report after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let stderr = || {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    match body {
        Ok(Some(body)) => {
            eprintln!("chromium reported: {body}");
            serde_json::from_str(&body).map_err(|e| format!("bad report {body}: {e}"))
        }
        _ => Err(format!(
            "no report from Chromium within {limit:?}; its stderr:\n{}",
            stderr()
        )),
    }
}

/// Renders the quadrant picture over `secs` of audio into `tmp/site/video.mp4`.
async fn render_site(tmp: &Path, secs: f64, full_encode: bool) -> (PathBuf, StillVideo) {
    let image = quadrant_png(tmp);
    let audio = wav(tmp, secs);
    let site = tmp.join("site");
    std::fs::create_dir(&site).unwrap();
    let (settings, cancel) = (RenderSettings::default(), CancellationToken::new());
    let video = if full_encode {
        render_still_video_full_encode(&image, &audio, &site, &settings, &|_| {}, &cancel).await
    } else {
        render_still_video(&image, &audio, &site, &settings, &|_| {}, &cancel).await
    }
    .unwrap();
    assert_eq!(video.video, site.join("video.mp4"));
    (site, video)
}

/// Renders, plays, and asserts the playback was flawless.
async fn assert_plays(secs: f64, full_encode: bool, seek: Option<f64>) {
    let Some(browser) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (site, video) = render_site(tmp.path(), secs, full_encode).await;
    let report = play(browser, &site, video.duration_secs, seek)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "chromium played {:.2}s in {:.2}s: {} frames presented, {} decoded, {} dropped",
        report.duration.unwrap_or(f64::NAN),
        report.play_secs.unwrap_or(f64::NAN),
        report.presented,
        report.total_video_frames,
        report.dropped_video_frames
    );
    let mut problems = problems(&report, video.duration_secs);
    if let Some(to) = seek {
        problems.extend(seek_problems(&report, to, KEYFRAME_SECS));
    }
    assert!(
        problems.is_empty(),
        "Chromium did not play the {}s video cleanly: {problems:#?}\n{report:#?}",
        video.duration_secs
    );
}

#[tokio::test]
async fn fast_path_video_plays_in_chromium() {
    assert_plays(3.0, false, None).await;
}

/// Plays across the second IDR at 10 s, then seeks to 11 s, which the
/// browser must reach from that IDR: the frames after it are skip slices
/// that refer to it, and the MP4's sync-sample table must list it.
#[tokio::test]
async fn fast_path_video_past_the_second_keyframe_plays_and_seeks() {
    assert_plays(12.0, false, Some(11.0)).await;
}

/// The reference: libx264 encoding every frame passes the same check.
#[tokio::test]
async fn full_encode_plays_in_chromium() {
    assert_plays(3.0, true, None).await;
}

/// The check can fail: half a file (its `moov` promises samples the server
/// no longer has) must not pass.
#[tokio::test]
async fn truncated_video_is_caught() {
    let Some(browser) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (site, video) = render_site(tmp.path(), 3.0, false).await;
    let bytes = std::fs::read(&video.video).unwrap();
    std::fs::write(&video.video, &bytes[..bytes.len() / 2]).unwrap();
    let report = play(browser, &site, video.duration_secs, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let problems = problems(&report, video.duration_secs);
    eprintln!("truncated file: {problems:#?}");
    assert!(!problems.is_empty(), "a half file passed: {report:#?}");
}

/// The picture check can fail too: a report like a clean run's (recorded
/// from Chromium) but with a grey frame, as a decoder concealing a lost
/// IDR shows, is rejected on every quadrant and nothing else.
#[test]
fn wrong_picture_is_caught() {
    let grey = r#"[[128,128,128],[128,128,128],[128,128,128],[128,128,128]]"#;
    let report: Report = serde_json::from_str(&format!(
        r#"{{"events":["playing@0.002","ended@3.000"],"presented":75,"maxMediaTime":2.96,
        "ended":true,"endedAt":3,"finalPixels":{grey},"why":"ended","duration":3,
        "currentTime":3,"videoWidth":640,"videoHeight":360,"error":null,
        "totalVideoFrames":75,"droppedVideoFrames":0,"audioBytes":49182,
        "videoBytes":2306,"playSecs":3.04}}"#
    ))
    .unwrap();
    let problems = problems(&report, 3.0);
    assert_eq!(problems.len(), 5, "{problems:#?}"); // 4 quadrants + events
    assert!(problems[..4]
        .iter()
        .all(|p| p.starts_with("last frame: quadrant")));
}
