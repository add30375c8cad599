//! What the still renderer's video stream holds, decoded with the real
//! ffmpeg: every frame there, every frame the picture, seekable, playable
//! in browsers; and the full encode kept beside it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::*;
use genq_media::{render_still_video, render_still_video_full_encode, RenderSettings, StillVideo};
use tokio_util::sync::CancellationToken;

const FRAME: f64 = 1.0 / 25.0;

fn out_dir(tmp: &tempfile::TempDir) -> PathBuf {
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    out
}

async fn render(image: &Path, audio: &Path, out: &Path) -> StillVideo {
    render_still_video(
        image,
        audio,
        out,
        &RenderSettings::default(),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// H.264 yuv420p + AAC at exactly 25 fps, one frame per 1/25 s of the
/// audio (rounded), moov before mdat; returns the frame count.
async fn assert_web_ready(video: &Path, audio: &Path, size: (u32, u32)) -> u64 {
    let audio_info = ffprobe(audio).await;
    let audio_secs = audio_info.first_audio().unwrap().duration.unwrap();
    let info = ffprobe(video).await;
    let v = info.first_video().expect("video stream");
    let a = info.first_audio().expect("audio stream");
    assert_eq!(v.codec_name.as_deref(), Some("h264"));
    assert_eq!(a.codec_name.as_deref(), Some("aac"));
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!((v.width, v.height), (Some(size.0), Some(size.1)));
    assert_eq!(v.r_frame_rate.as_deref(), Some("25/1"));
    assert_eq!(v.avg_frame_rate.as_deref(), Some("25/1"));
    let frames = (audio_secs * 25.0).round() as u64;
    assert_eq!(v.nb_frames, Some(frames), "audio {audio_secs}s");
    let video_secs = v.duration.unwrap();
    assert!(
        (video_secs - audio_secs).abs() <= FRAME + 1e-6,
        "video {video_secs}s vs audio {audio_secs}s"
    );
    // ffprobe counts an MP3's encoder delay and padding (LAME: at least
    // 1105 samples) in its duration; decoders drop them.
    let muxed_audio_secs = a.duration.unwrap();
    assert!(
        (muxed_audio_secs - audio_secs).abs() <= 0.06,
        "muxed audio {muxed_audio_secs}s vs input {audio_secs}s"
    );
    let boxes = mp4_boxes(video);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov box");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat box");
    assert!(moov < mdat, "not faststart: {boxes:?}");
    frames
}

#[tokio::test]
async fn every_frame_decodes_to_the_picture_and_keyframes_allow_seeking() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 320, 240);
    let audio = mp3(tmp.path(), 12.3);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out).await;

    let frames = assert_web_ready(&res.video, &audio, (320, 240)).await;
    // Decoding all of it is clean, yields every frame, and every frame is
    // the first one exactly.
    let md5s = frame_md5s(&res.video);
    assert_eq!(md5s.len() as u64, frames);
    assert!(md5s.iter().all(|h| *h == md5s[0]), "frames differ");
    // An IDR every 10 s, as libx264 would place them at 25 fps.
    assert_eq!(keyframe_times(&res.video), [0.0, 10.0]);
    // And that picture is the image: the end of the video looks like the
    // poster (both lossy, hence not equal).
    let diff = mean_abs_diff(&last_frame(&res.video), &open_rgb(&res.poster));
    assert!(diff < 6.0, "last frame differs from the poster by {diff}");
}

fn open_rgb(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().into_rgb8()
}

#[tokio::test]
async fn full_hd_video_suits_browsers() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 1920, 1080);
    let audio = mp3(tmp.path(), 2.0);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out).await;

    assert_eq!((res.width, res.height), (1920, 1080));
    let frames = assert_web_ready(&res.video, &audio, (1920, 1080)).await;
    let (profile, level) = profile_and_level(&res.video);
    assert!(["High", "Main"].contains(&profile.as_str()), "{profile}");
    // 4.0 is what 1080p25 needs; 4.2 is as far as hardware decoders in
    // phones and browsers reliably go.
    assert!((30..=42).contains(&level), "level {level}");
    let md5s = frame_md5s(&res.video);
    assert_eq!(md5s.len() as u64, frames);
    assert!(md5s.iter().all(|h| *h == md5s[0]), "frames differ");
    let diff = mean_abs_diff(&last_frame(&res.video), &open_rgb(&res.poster));
    assert!(diff < 6.0, "last frame differs from the poster by {diff}");
    // The per-frame cost is what makes this fast; it should show in size.
    let video_bytes = std::fs::metadata(&res.video).unwrap().len();
    assert!(video_bytes < 2_000_000, "{video_bytes} bytes");
}

#[tokio::test]
async fn full_encode_is_still_available() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 322, 240);
    let audio = wav(tmp.path(), 1.5);
    let out = out_dir(&tmp);
    let seen = Mutex::new(Vec::new());

    let res = render_still_video_full_encode(
        &image,
        &audio,
        &out,
        &RenderSettings::default(),
        &|p| seen.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!((res.width, res.height), (322, 240));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["poster.jpg", "thumbnail.jpg", "video.mp4"]);
    let frames = assert_web_ready(&res.video, &audio, (322, 240)).await;
    assert_eq!(frame_md5s(&res.video).len() as u64, frames);
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not rising: {seen:?}");
    assert!(*seen.last().unwrap() >= 90, "{seen:?}");
}

#[tokio::test]
async fn audio_shorter_than_a_frame_still_gets_a_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 64, 48);
    let audio = wav(tmp.path(), 0.01);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out).await;

    let info = ffprobe(&res.video).await;
    let v = info.first_video().unwrap();
    assert_eq!(v.nb_frames, Some(1));
    assert!(v.duration.unwrap() <= FRAME + 1e-6);
    assert_eq!(frame_md5s(&res.video).len(), 1);
}
