//! `render_still_video` end to end with the real ffmpeg/ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use genq_media::{render_still_video, MediaError, RenderSettings, StillVideo};
use image::{ImageFormat, ImageReader, RgbImage};
use tokio_util::sync::CancellationToken;

const FRAME: f64 = 1.0 / 25.0;

async fn render(
    image: &Path,
    audio: &Path,
    out: &Path,
    settings: &RenderSettings,
) -> Result<StillVideo, MediaError> {
    render_still_video(
        image,
        audio,
        out,
        settings,
        &|_| {},
        &CancellationToken::new(),
    )
    .await
}

fn out_dir(tmp: &tempfile::TempDir) -> PathBuf {
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn open_jpeg(path: &Path) -> RgbImage {
    let reader = ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap();
    assert_eq!(
        reader.format(),
        Some(ImageFormat::Jpeg),
        "{}",
        path.display()
    );
    reader.decode().unwrap().into_rgb8()
}

/// The first frame as a viewer would see it.
fn first_frame(video: &Path) -> RgbImage {
    let png = video.with_file_name("first-frame.png");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let img = image::open(&png).unwrap().into_rgb8();
    std::fs::remove_file(png).unwrap();
    img
}

fn assert_color_near(actual: [u8; 3], expected: [u8; 3], what: &str) {
    let close = actual
        .iter()
        .zip(expected)
        .all(|(a, e)| (i16::from(*a) - i16::from(e)).abs() <= 30);
    assert!(close, "{what}: got {actual:?}, expected about {expected:?}");
}

#[tokio::test]
async fn jpeg_and_mp3_become_a_web_ready_mp4_with_poster_and_thumbnail() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 480, 360);
    let audio = mp3(tmp.path(), 2.5);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out, &RenderSettings::default())
        .await
        .unwrap();

    assert_eq!((res.width, res.height), (480, 360));
    assert_eq!(listing(&out), ["poster.jpg", "thumbnail.jpg", "video.mp4"]);
    assert_eq!(res.video, out.join("video.mp4"));

    let audio_info = ffprobe(&audio).await;
    let audio_secs = audio_info.first_audio().unwrap().duration.unwrap();
    assert!((res.duration_secs - audio_secs).abs() < 1e-6);

    let info = ffprobe(&res.video).await;
    let v = info.first_video().expect("video stream");
    let a = info.first_audio().expect("audio stream");
    assert_eq!(v.codec_name.as_deref(), Some("h264"));
    assert_eq!(a.codec_name.as_deref(), Some("aac"));
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!((v.width, v.height), (Some(480), Some(360)));
    // Constant frame rate: nominal and average agree at exactly 25.
    assert_eq!(v.r_frame_rate.as_deref(), Some("25/1"));
    assert_eq!(v.avg_frame_rate.as_deref(), Some("25/1"));
    let video_secs = v.duration.unwrap();
    assert!(
        (video_secs - audio_secs).abs() <= FRAME + 1e-6,
        "video {video_secs}s vs audio {audio_secs}s"
    );
    let frames = v.nb_frames.unwrap() as f64;
    assert!((frames * FRAME - video_secs).abs() < 1e-3);

    let boxes = mp4_boxes(&res.video);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov box");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat box");
    assert!(moov < mdat, "not faststart: {boxes:?}");

    assert_eq!(open_jpeg(&res.poster).dimensions(), (480, 360));
    assert_eq!(open_jpeg(&res.thumbnail).dimensions(), (320, 240));
}

#[tokio::test]
async fn odd_sized_image_gives_even_video_dimensions() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 321, 241);
    let audio = wav(tmp.path(), 1.0);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out, &RenderSettings::default())
        .await
        .unwrap();

    assert_eq!((res.width, res.height), (320, 240));
    let info = ffprobe(&res.video).await;
    let v = info.first_video().unwrap();
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    let video_secs = v.duration.unwrap();
    assert!((video_secs - 1.0).abs() <= FRAME + 1e-6, "{video_secs}");
}

#[tokio::test]
async fn exif_orientation_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    // Stored landscape, blue block top-left; orientation 6 says "rotate 90°
    // clockwise to view", so the viewer sees portrait with blue top-right.
    let stored = lavfi_image(
        tmp.path(),
        "stored.jpg",
        "color=c=red:s=320x240,drawbox=x=0:y=0:w=80:h=60:color=blue:t=fill",
    );
    let image = tmp.path().join("rotated.jpg");
    std::fs::write(
        &image,
        with_exif_orientation(&std::fs::read(stored).unwrap(), 6),
    )
    .unwrap();
    let audio = wav(tmp.path(), 1.0);
    let out = out_dir(&tmp);

    let res = render(&image, &audio, &out, &RenderSettings::default())
        .await
        .unwrap();

    assert_eq!((res.width, res.height), (240, 320));
    let info = ffprobe(&res.video).await;
    let v = info.first_video().unwrap();
    assert_eq!((v.width, v.height), (Some(240), Some(320)));

    let poster = open_jpeg(&res.poster);
    assert_eq!(poster.dimensions(), (240, 320));
    assert_color_near(rgb_at(&poster, 220, 20), [0, 0, 255], "poster top-right");
    assert_color_near(rgb_at(&poster, 20, 20), [255, 0, 0], "poster top-left");
    let frame = first_frame(&res.video);
    assert_color_near(rgb_at(&frame, 220, 20), [0, 0, 255], "video top-right");
    assert_color_near(rgb_at(&frame, 20, 300), [255, 0, 0], "video bottom-left");
}

#[tokio::test]
async fn transparent_png_is_flattened_and_large_image_capped() {
    let tmp = tempfile::tempdir().unwrap();
    // Left half fully transparent, right half opaque green.
    let png = image::RgbaImage::from_fn(400, 300, |x, _| {
        if x < 200 {
            image::Rgba([255, 0, 0, 0])
        } else {
            image::Rgba([0, 200, 0, 255])
        }
    });
    let image = tmp.path().join("alpha.png");
    png.save(&image).unwrap();
    let audio = wav(tmp.path(), 1.0);
    let out = out_dir(&tmp);
    let settings = RenderSettings {
        max_long_side: 200,
        background: [255, 255, 255],
        ..RenderSettings::default()
    };

    let res = render(&image, &audio, &out, &settings).await.unwrap();

    assert_eq!((res.width, res.height), (200, 150));
    let v = ffprobe(&res.video).await;
    let v = v.first_video().unwrap();
    assert_eq!((v.width, v.height), (Some(200), Some(150)));

    let poster = open_jpeg(&res.poster);
    assert_color_near(
        rgb_at(&poster, 30, 75),
        [255, 255, 255],
        "poster, transparent side",
    );
    assert_color_near(rgb_at(&poster, 170, 75), [0, 200, 0], "poster, opaque side");
    let frame = first_frame(&res.video);
    assert_eq!(frame.dimensions(), (200, 150));
    assert_color_near(
        rgb_at(&frame, 30, 75),
        [255, 255, 255],
        "video, transparent side",
    );
    assert_color_near(rgb_at(&frame, 170, 75), [0, 200, 0], "video, opaque side");
}

#[tokio::test]
async fn corrupt_image_is_rejected_as_invalid_image() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("broken.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&image, bytes).unwrap();
    let audio = wav(tmp.path(), 1.0);
    let out = out_dir(&tmp);

    let err = render(&image, &audio, &out, &RenderSettings::default())
        .await
        .unwrap_err();

    assert!(matches!(err, MediaError::InvalidImage(_)), "{err:?}");
    assert_eq!(err.code(), "INVALID_IMAGE");
    let msg = err.to_string();
    assert!(msg.starts_with("image could not be decoded: "), "{msg}");
    assert!(
        msg.len() > "image could not be decoded: ".len() + 5,
        "no reason: {msg}"
    );
    assert!(listing(&out).is_empty(), "left behind {:?}", listing(&out));
}

/// A file cut short (an upload that stopped, `head -c`) fails the render
/// naming the image, rather than rendering with a grey lower half.
#[tokio::test]
async fn truncated_images_are_rejected_as_invalid_image() {
    let tmp = tempfile::tempdir().unwrap();
    let audio = wav(tmp.path(), 1.0);
    for name in ["whole.jpg", "whole.png", "whole.webp"] {
        let whole = lavfi_image(tmp.path(), name, "testsrc=size=320x240");
        let bytes = std::fs::read(&whole).unwrap();
        // The first render is fine; then cut at two thirds.
        let out = tmp.path().join(format!("out-{name}"));
        std::fs::create_dir(&out).unwrap();
        render(&whole, &audio, &out, &RenderSettings::default())
            .await
            .unwrap_or_else(|e| panic!("{name} whole: {e}"));
        let cut = tmp.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let out = tmp.path().join(format!("out-cut-{name}"));
        std::fs::create_dir(&out).unwrap();
        let err = render(&cut, &audio, &out, &RenderSettings::default())
            .await
            .expect_err(name);
        assert_eq!(err.code(), "INVALID_IMAGE", "{name}: {err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("image could not be decoded: "),
            "{name}: {msg}"
        );
        assert!(msg.contains("truncated"), "{name}: {msg}");
        assert!(listing(&out).is_empty(), "{name}: left {:?}", listing(&out));
    }
}

#[tokio::test]
async fn text_file_as_audio_is_rejected_as_invalid_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 64, 48);
    let out = out_dir(&tmp);
    // Disguised as MP3, and as .txt, which ffmpeg would otherwise happily
    // read as an "ANSI art" video.
    for name in ["audio.mp3", "notes.txt"] {
        let audio = tmp.path().join(name);
        std::fs::write(&audio, "this is not audio, just some words\n".repeat(20)).unwrap();

        let err = render(&image, &audio, &out, &RenderSettings::default())
            .await
            .unwrap_err();

        assert!(
            matches!(err, MediaError::InvalidAudio(_)),
            "{name}: {err:?}"
        );
        assert_eq!(err.code(), "INVALID_AUDIO");
        let msg = err.to_string();
        assert!(msg.starts_with("audio could not be decoded: "), "{msg}");
        assert!(
            !msg.contains(tmp.path().to_str().unwrap()),
            "leaks a path: {msg}"
        );
        assert!(listing(&out).is_empty());
    }
}

#[tokio::test]
async fn progress_rises_to_near_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 320, 240);
    let audio = wav(tmp.path(), 3.0);
    let out = out_dir(&tmp);
    let seen = Mutex::new(Vec::new());

    render_still_video(
        &image,
        &audio,
        &out,
        &RenderSettings::default(),
        &|p| seen.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not rising: {seen:?}");
    assert!(seen.iter().all(|&p| p <= 99), "{seen:?}");
    assert!(*seen.last().unwrap() >= 90, "{seen:?}");
}

#[tokio::test]
async fn cancel_kills_ffmpeg_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 640, 480);
    // Long enough that the audio transcode, the render's longest step, is
    // still running when the cancel comes.
    let audio = wav(tmp.path(), 180.0);
    let out = out_dir(&tmp);
    let cancel = CancellationToken::new();

    let render = {
        let (image, audio, out, cancel) =
            (image.clone(), audio.clone(), out.clone(), cancel.clone());
        tokio::spawn(async move {
            let settings = RenderSettings::default();
            render_still_video(&image, &audio, &out, &settings, &|_| {}, &cancel).await
        })
    };

    // Wait until an ffmpeg writing into our output dir (only the render's
    // do) is really running, give the others a moment to start, then cancel.
    let needle = format!("{}/", out.to_string_lossy());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pids = loop {
        let pids = pids_mentioning(&needle);
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "ffmpeg never started");
        assert!(
            !render.is_finished(),
            "render ended early: {:?}",
            render.await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    pids.extend(pids_mentioning(&needle));
    let cancelled_at = Instant::now();
    cancel.cancel();
    let res = render.await.unwrap();
    let took = cancelled_at.elapsed();

    assert!(matches!(res, Err(MediaError::Cancelled)), "{res:?}");
    assert_eq!(res.unwrap_err().code(), "CANCELLED");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} still exists"
        );
    }
    assert!(listing(&out).is_empty(), "left behind {:?}", listing(&out));
}

#[tokio::test]
async fn missing_tools_are_reported_as_tool_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let image = test_jpeg(tmp.path(), 64, 48);
    let audio = wav(tmp.path(), 0.5);
    let out = out_dir(&tmp);

    let no_ffprobe = RenderSettings {
        ffprobe: "/nonexistent/ffprobe".into(),
        ..RenderSettings::default()
    };
    let err = render(&image, &audio, &out, &no_ffprobe).await.unwrap_err();
    assert!(matches!(err, MediaError::ToolMissing(_)), "{err:?}");
    assert_eq!(err.code(), "TOOL_MISSING");
    assert!(
        err.to_string().contains("ffprobe is not installed"),
        "{err}"
    );

    // ffmpeg is only needed after the poster and thumbnail exist; those must
    // not be left behind as if the render had half-succeeded.
    let no_ffmpeg = RenderSettings {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..RenderSettings::default()
    };
    let err = render(&image, &audio, &out, &no_ffmpeg).await.unwrap_err();
    assert!(matches!(err, MediaError::ToolMissing(_)), "{err:?}");
    assert!(err.to_string().contains("install ffmpeg"), "{err}");
    assert!(listing(&out).is_empty(), "left behind {:?}", listing(&out));
}
