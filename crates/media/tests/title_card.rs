//! `render_title_card` end to end with the real ffmpeg/ffprobe and the
//! DejaVu fonts.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use genq_media::{render_title_card, MediaError, RenderSettings, StillVideo, TitleCard};
use image::RgbImage;
use tokio_util::sync::CancellationToken;

const FRAME: f64 = 1.0 / 25.0;

fn card(text: &str) -> TitleCard {
    TitleCard {
        text: text.into(),
        ..TitleCard::default()
    }
}

async fn render(card: &TitleCard, out: &Path) -> Result<StillVideo, MediaError> {
    render_title_card(
        card,
        out,
        &RenderSettings::default(),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
}

fn out_dir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    let out = tmp.path().join(name);
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

fn open(path: &Path) -> RgbImage {
    image::open(path).unwrap().into_rgb8()
}

fn luma([r, g, b]: [u8; 3]) -> f64 {
    0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
}

/// The darkest and brightest pixels' luma and positions.
fn extremes(img: &RgbImage) -> ((f64, u32, u32), (f64, u32, u32)) {
    let mut dark = (f64::MAX, 0, 0);
    let mut bright = (f64::MIN, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        let l = luma(p.0);
        if l < dark.0 {
            dark = (l, x, y);
        }
        if l > bright.0 {
            bright = (l, x, y);
        }
    }
    (dark, bright)
}

fn in_middle(img: &RgbImage, (_, x, y): (f64, u32, u32)) -> bool {
    let (w, h) = img.dimensions();
    x > w / 10 && x < w - w / 10 && y > h / 4 && y < h - h / 4
}

#[tokio::test]
async fn default_card_is_a_web_ready_mp4_with_silent_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");

    let res = render(&card("Chapter One"), &out).await.unwrap();

    assert_eq!(listing(&out), ["poster.jpg", "thumbnail.jpg", "video.mp4"]);
    assert_eq!(
        (res.video.clone(), res.width, res.height, res.duration_secs),
        (out.join("video.mp4"), 1280, 720, 5.0)
    );
    let info = ffprobe(&res.video).await;
    let v = info.first_video().expect("video stream");
    let a = info.first_audio().expect("audio stream");
    assert_eq!(v.codec_name.as_deref(), Some("h264"));
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert_eq!(v.r_frame_rate.as_deref(), Some("25/1"));
    assert_eq!(v.avg_frame_rate.as_deref(), Some("25/1"));
    assert_eq!(v.nb_frames, Some(125));
    let secs = v.duration.unwrap();
    assert!((secs - 5.0).abs() <= FRAME, "video lasts {secs}s");
    assert_eq!(a.codec_name.as_deref(), Some("aac"));
    let audio_secs = a.duration.unwrap();
    assert!(
        (audio_secs - 5.0).abs() <= FRAME,
        "audio lasts {audio_secs}s"
    );

    let boxes = mp4_boxes(&res.video);
    let moov = boxes.iter().position(|b| b == "moov").unwrap();
    let mdat = boxes.iter().position(|b| b == "mdat").unwrap();
    assert!(moov < mdat, "not faststart: {boxes:?}");

    assert_eq!(open(&res.poster).dimensions(), (1280, 720));
    assert_eq!(open(&res.thumbnail).dimensions(), (320, 180));
}

#[tokio::test]
async fn portrait_resolution_and_odd_duration_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let card = TitleCard {
        duration_secs: 2.5,
        width: 1080,
        height: 1920,
        ..card("A portrait card with a longer line of text that has to wrap")
    };

    let res = render(&card, &out).await.unwrap();

    let info = ffprobe(&res.video).await;
    let v = info.first_video().unwrap();
    assert_eq!((v.width, v.height), (Some(1080), Some(1920)));
    let secs = v.duration.unwrap();
    assert!((secs - 2.5).abs() <= FRAME, "{secs}");
    assert_eq!(open(&res.poster).dimensions(), (1080, 1920));
    assert_eq!(open(&res.thumbnail).dimensions(), (180, 320));
}

#[tokio::test]
async fn text_contrasts_with_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    for (background, light_bg) in [("#F5F5DC", true), ("white", true), ("navy", false)] {
        let out = out_dir(&tmp, background);
        let card = TitleCard {
            duration_secs: 1.0,
            background: background.into(),
            ..card("Hello World")
        };
        let res = render(&card, &out).await.unwrap();

        for img in [open(&res.poster), first_frame(&res.video)] {
            let bg = luma(rgb_at(&img, 5, 5));
            let (dark, bright) = extremes(&img);
            if light_bg {
                assert!(bg > 200.0, "{background}: {bg}");
                assert!(dark.0 < 60.0, "{background}: darkest {dark:?}");
                assert!(in_middle(&img, dark), "{background}: darkest at {dark:?}");
            } else {
                assert!(bg < 60.0, "{background}: {bg}");
                assert!(bright.0 > 220.0, "{background}: brightest {bright:?}");
                assert!(
                    in_middle(&img, bright),
                    "{background}: brightest at {bright:?}"
                );
            }
        }
    }
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
    let img = open(&png);
    std::fs::remove_file(png).unwrap();
    img
}

#[tokio::test]
async fn special_characters_render_literally() {
    let tmp = tempfile::tempdir().unwrap();
    let literal = render(
        &TitleCard {
            duration_secs: 1.0,
            ..card("%{pts}")
        },
        &out_dir(&tmp, "literal"),
    )
    .await
    .unwrap();
    // What drawtext would have drawn had it expanded %{pts} on frame 0.
    let expanded = render(
        &TitleCard {
            duration_secs: 1.0,
            ..card("0.000000")
        },
        &out_dir(&tmp, "expanded"),
    )
    .await
    .unwrap();
    let (a, b) = (open(&literal.poster), open(&expanded.poster));
    let differing = a
        .pixels()
        .zip(b.pixels())
        .filter(|(p, q)| (luma(p.0) - luma(q.0)).abs() > 60.0)
        .count();
    assert!(
        differing > 200,
        "%{{pts}} was expanded ({differing} px differ)"
    );

    let res = render(
        &TitleCard {
            duration_secs: 1.0,
            ..card(r"It's 10:30 \n C:\temp %{localtime} %% ${HOME} [a],b;c 'x' \\")
        },
        &out_dir(&tmp, "mixed"),
    )
    .await
    .unwrap();
    let (_, bright) = extremes(&open(&res.poster));
    assert!(bright.0 > 220.0, "no text drawn");
}

#[tokio::test]
async fn awkward_directory_names_are_escaped_in_the_filter_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, r"we'ird: dir,[x];\ %d");
    let card = TitleCard {
        duration_secs: 1.0,
        ..card("Escaped")
    };
    let res = render(&card, &out).await.unwrap();
    assert_eq!(listing(&out), ["poster.jpg", "thumbnail.jpg", "video.mp4"]);
    let (_, bright) = extremes(&open(&res.poster));
    assert!(bright.0 > 220.0, "no text drawn");
}

#[tokio::test]
async fn invalid_cards_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let cases = [
        (card(""), "\"prompt\""),
        (card(&"x".repeat(301)), "\"prompt\""),
        (
            TitleCard {
                duration_secs: 0.0,
                ..card("x")
            },
            "\"duration\"",
        ),
        (
            TitleCard {
                duration_secs: f64::NAN,
                ..card("x")
            },
            "\"duration\"",
        ),
        (
            TitleCard {
                background: "#12345".into(),
                ..card("x")
            },
            "\"background\"",
        ),
        (
            TitleCard {
                width: 1279,
                ..card("x")
            },
            "\"resolution\"",
        ),
    ];
    for (card, field) in cases {
        let err = render(&card, &out).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_INPUT", "{err}");
        assert!(err.to_string().contains(field), "{err}");
        assert!(listing(&out).is_empty());
    }
}

#[tokio::test]
async fn progress_rises_to_near_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = Mutex::new(Vec::new());
    render_title_card(
        &TitleCard {
            duration_secs: 3.0,
            ..card("Progress")
        },
        &out_dir(&tmp, "out"),
        &RenderSettings::default(),
        &|p| seen.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(*seen.last().unwrap() >= 90 && *seen.last().unwrap() <= 99);
}

#[tokio::test]
async fn cancel_kills_ffmpeg_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let cancel = CancellationToken::new();
    let task = {
        let (out, cancel) = (out.clone(), cancel.clone());
        tokio::spawn(async move {
            let card = TitleCard {
                duration_secs: 60.0,
                width: 1920,
                height: 1080,
                ..card("A long card")
            };
            render_title_card(&card, &out, &RenderSettings::default(), &|_| {}, &cancel).await
        })
    };

    let needle = out.join("video.mp4").to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        let pids = pids_mentioning(&needle);
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "ffmpeg never started");
        assert!(!task.is_finished(), "ended early: {:?}", task.await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let res = task.await.unwrap();
    let took = cancelled_at.elapsed();

    assert!(matches!(res, Err(MediaError::Cancelled)), "{res:?}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{pid} lives");
    }
    assert!(listing(&out).is_empty(), "left behind {:?}", listing(&out));
}

#[tokio::test]
async fn missing_ffmpeg_is_tool_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let settings = RenderSettings {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..RenderSettings::default()
    };
    let err = render_title_card(
        &card("x"),
        &out,
        &settings,
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "TOOL_MISSING");
    assert!(err.to_string().contains("install ffmpeg"), "{err}");
    assert!(listing(&out).is_empty());
}
