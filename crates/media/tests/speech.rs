//! `synthesize_speech` end to end with the real espeak-ng, ffmpeg and
//! ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use genq_media::{synthesize_speech, MediaError, Speech, SpeechSettings};
use tokio_util::sync::CancellationToken;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog, and then it rests.";

async fn speak(
    text: &str,
    voice: Option<&str>,
    speed: Option<f64>,
    out: &Path,
) -> Result<Speech, MediaError> {
    synthesize_speech(
        text,
        voice,
        speed,
        out,
        &SpeechSettings::default(),
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

/// Checks the file really is an MP3 and returns its probed length.
async fn mp3_secs(path: &Path) -> f64 {
    let info = ffprobe(path).await;
    assert_eq!(info.format_name.as_deref(), Some("mp3"));
    let a = info.first_audio().expect("audio stream");
    assert_eq!(a.codec_name.as_deref(), Some("mp3"));
    assert!(info.first_video().is_none());
    a.duration.or(info.duration).unwrap()
}

#[tokio::test]
async fn a_sentence_becomes_an_mp3_whose_length_follows_the_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (out_dir(&tmp, "one"), out_dir(&tmp, "two"));

    let short = speak(SENTENCE, None, None, &one).await.unwrap();
    let long = speak(&format!("{SENTENCE} {SENTENCE}"), None, None, &two)
        .await
        .unwrap();

    assert_eq!(short.audio, one.join("speech.mp3"));
    assert_eq!(listing(&one), ["speech.mp3"]);
    let secs = mp3_secs(&short.audio).await;
    assert!((secs - short.duration_secs).abs() < 1e-6);
    assert!(secs > 0.5, "{secs}");
    let ratio = long.duration_secs / short.duration_secs;
    assert!(
        (1.6..2.4).contains(&ratio),
        "twice the text, {ratio}× the time"
    );
}

#[tokio::test]
async fn double_speed_is_shorter() {
    let tmp = tempfile::tempdir().unwrap();
    let normal = speak(SENTENCE, None, Some(1.0), &out_dir(&tmp, "normal"))
        .await
        .unwrap();
    let fast = speak(SENTENCE, None, Some(2.0), &out_dir(&tmp, "fast"))
        .await
        .unwrap();
    let slow = speak(SENTENCE, None, Some(0.5), &out_dir(&tmp, "slow"))
        .await
        .unwrap();
    assert!(
        fast.duration_secs < normal.duration_secs * 0.7,
        "fast {} vs normal {}",
        fast.duration_secs,
        normal.duration_secs
    );
    assert!(slow.duration_secs > normal.duration_secs * 1.4);
}

#[tokio::test]
async fn other_voices_work() {
    let tmp = tempfile::tempdir().unwrap();
    for (voice, text) in [
        (
            "de",
            "Der schnelle braune Fuchs springt über den faulen Hund.",
        ),
        ("en-us", SENTENCE),
        ("fr", "Le renard brun saute par-dessus le chien paresseux."),
        ("en+f3", SENTENCE),
    ] {
        let out = out_dir(&tmp, voice);
        let speech = speak(text, Some(voice), None, &out).await.unwrap();
        assert!(mp3_secs(&speech.audio).await > 1.0, "{voice}");
    }
}

#[tokio::test]
async fn bad_requests_are_invalid_input_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let too_long = "a".repeat(5001);
    let cases: [(&str, Option<&str>, Option<f64>, &str); 8] = [
        (SENTENCE, Some("xx"), None, "unknown voice \"xx\""),
        (SENTENCE, Some("en+nosuchvariant"), None, "unknown voice"),
        (SENTENCE, Some("--help"), None, "\"voice\""),
        ("", None, None, "\"text\" is empty"),
        (" \n\t ", None, None, "\"text\" is empty"),
        (&too_long, None, None, "\"text\" is too long"),
        (
            SENTENCE,
            None,
            Some(5.0),
            "\"speed\" must be between 0.5 and 2",
        ),
        (SENTENCE, None, Some(0.1), "\"speed\""),
    ];
    for (text, voice, speed, expected) in cases {
        let err = speak(text, voice, speed, &out).await.unwrap_err();
        assert!(matches!(err, MediaError::InvalidInput(_)), "{err:?}");
        assert_eq!(err.code(), "INVALID_INPUT");
        assert!(err.to_string().contains(expected), "{err}");
        assert!(listing(&out).is_empty(), "left behind {:?}", listing(&out));
    }
    // The limit counts characters, not bytes.
    speak(&"é".repeat(5000), None, None, &out).await.unwrap();
}

#[tokio::test]
async fn text_that_looks_like_options_is_spoken() {
    let tmp = tempfile::tempdir().unwrap();
    let stray = tmp.path().join("stray.wav");
    for (i, text) in [
        "--help".to_owned(),
        format!("-w {}", stray.display()),
        "-w /tmp/x --voices -v de".to_owned(),
        "-v de".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let out = out_dir(&tmp, &format!("out{i}"));
        let speech = speak(text, None, None, &out).await.unwrap();
        assert!(mp3_secs(&speech.audio).await > 0.2, "{text}");
        assert_eq!(listing(&out), ["speech.mp3"], "{text}");
    }
    assert!(!stray.exists(), "espeak-ng took the text as options");
    let mut names = listing(tmp.path());
    names.retain(|n| !n.starts_with("out"));
    assert!(names.is_empty(), "stray files {names:?}");
}

#[tokio::test]
async fn progress_rises_and_stays_below_100() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = Mutex::new(Vec::new());
    synthesize_speech(
        SENTENCE,
        None,
        None,
        &out_dir(&tmp, "out"),
        &SpeechSettings::default(),
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
async fn cancel_kills_the_synthesis_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let cancel = CancellationToken::new();
    // About an hour of speech: far more than the test will let it make.
    let text = SENTENCE.repeat(600);
    let task = {
        let (out, cancel) = (out.clone(), cancel.clone());
        tokio::spawn(async move {
            let settings = SpeechSettings {
                max_chars: text.len(),
                ..SpeechSettings::default()
            };
            synthesize_speech(&text, None, None, &out, &settings, &|_| {}, &cancel).await
        })
    };

    // espeak-ng's argv names the scratch WAV in our output directory.
    let needle = out.join(".speech.wav").to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        let pids = pids_mentioning(&needle);
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "espeak-ng never started");
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
async fn missing_espeak_is_tool_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(&tmp, "out");
    let settings = SpeechSettings {
        espeak: "/nonexistent/espeak-ng".into(),
        ..SpeechSettings::default()
    };
    let err = synthesize_speech(
        SENTENCE,
        None,
        None,
        &out,
        &settings,
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "TOOL_MISSING");
    let msg = err.to_string();
    assert!(msg.contains("install espeak-ng"), "{msg}");
    assert!(!msg.contains("/nonexistent"), "{msg}");
    assert!(listing(&out).is_empty());
}
