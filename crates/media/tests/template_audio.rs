//! A template video's soundtrack with the real ffmpeg: ducking lowers the
//! music under the voice, `background_start` and `background_volume` change
//! what is heard, short music loops, and the music fades out at the end.
//! Levels are read back with ffmpeg's `astats` through a band-pass filter,
//! so the music (2 kHz, or 700 Hz after its fifth second) and the voice
//! (300 Hz) are measured apart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use genq_media::{soundtrack, voice_track, Music, RenderSettings};
use genq_template::Effect;
use tokio_util::sync::CancellationToken;

fn tone(dir: &Path, name: &str, frequency: u32, secs: f64) -> PathBuf {
    let path = dir.join(name);
    let source = format!("sine=frequency={frequency}:duration={secs}:sample_rate=48000");
    ffmpeg(&["-f", "lavfi", "-i", &source, path.to_str().unwrap()]);
    path
}

/// Music whose first five seconds are 2 kHz and the rest 700 Hz.
fn two_part_music(dir: &Path) -> PathBuf {
    let path = dir.join("two-part.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=2000:duration=5:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=700:duration=5:sample_rate=48000",
        "-filter_complex",
        "[0:a][1:a]concat=n=2:v=0:a=1[out]",
        "-map",
        "[out]",
        path.to_str().unwrap(),
    ]);
    path
}

/// RMS level (dB) of `path` between `start` and `end` seconds, around
/// `frequency`.
fn level(path: &Path, start: f64, end: f64, frequency: u32) -> f64 {
    let filter = format!(
        "atrim=start={start}:end={end},bandpass=f={frequency}:width_type=q:w=10,astats=measure_perchannel=none"
    );
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .args(["-af", &filter, "-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rfind(|l| l.contains("RMS level dB:"))
        .unwrap_or_else(|| panic!("no astats in {stderr}"));
    let value = line.rsplit(':').next().unwrap().trim();
    if value == "-inf" {
        -200.0
    } else {
        value.parse().unwrap()
    }
}

fn music(path: &Path, start: f64, volume: f64, ducking: bool) -> Music {
    Music {
        path: path.to_owned(),
        start,
        volume,
        ducking,
    }
}

async fn mix(
    dir: &Path,
    name: &str,
    voice: Option<&Path>,
    music: Option<&Music>,
    secs: f64,
) -> PathBuf {
    let out = dir.join(name);
    soundtrack(
        voice,
        music,
        secs,
        &out,
        &RenderSettings::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let info = ffprobe(&out).await;
    let duration = info
        .first_audio()
        .and_then(|a| a.duration)
        .or(info.duration)
        .unwrap();
    assert!(
        (duration - secs).abs() < 0.03,
        "{name}: {duration} s, wanted {secs} s"
    );
    out
}

#[tokio::test]
async fn ducking_lowers_the_music_under_the_voice() {
    let dir = tempfile::tempdir().unwrap();
    let voice = tone(dir.path(), "voice.wav", 300, 4.0);
    let song = tone(dir.path(), "music.wav", 2000, 10.0);
    let ducked = mix(
        dir.path(),
        "ducked.wav",
        Some(&voice),
        Some(&music(&song, 0.0, 0.5, true)),
        4.0,
    )
    .await;
    let plain = mix(
        dir.path(),
        "plain.wav",
        Some(&voice),
        Some(&music(&song, 0.0, 0.5, false)),
        4.0,
    )
    .await;
    let under_voice = |path: &Path| level(path, 1.0, 2.0, 2000);
    let (ducked_db, plain_db) = (under_voice(&ducked), under_voice(&plain));
    assert!(
        plain_db - ducked_db > 6.0,
        "the music is at least 6 dB lower under the voice: {ducked_db:.1} vs {plain_db:.1} dB"
    );
    // The voice itself is untouched by the ducking.
    let (voice_ducked, voice_plain) = (level(&ducked, 1.0, 2.0, 300), level(&plain, 1.0, 2.0, 300));
    assert!(
        (voice_ducked - voice_plain).abs() < 1.0,
        "{voice_ducked} vs {voice_plain}"
    );
}

#[tokio::test]
async fn start_and_volume_change_what_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let song = two_part_music(dir.path());
    let from_start = mix(
        dir.path(),
        "a.wav",
        None,
        Some(&music(&song, 0.0, 0.5, true)),
        3.0,
    )
    .await;
    let from_six = mix(
        dir.path(),
        "b.wav",
        None,
        Some(&music(&song, 6.0, 0.5, true)),
        3.0,
    )
    .await;
    // From the start the 2 kHz part plays; six seconds in, the 700 Hz part.
    assert!(level(&from_start, 0.5, 1.0, 2000) > level(&from_start, 0.5, 1.0, 700) + 20.0);
    assert!(level(&from_six, 0.5, 1.0, 700) > level(&from_six, 0.5, 1.0, 2000) + 20.0);

    let loud = mix(
        dir.path(),
        "loud.wav",
        None,
        Some(&music(&song, 0.0, 1.0, true)),
        3.0,
    )
    .await;
    let quiet = mix(
        dir.path(),
        "quiet.wav",
        None,
        Some(&music(&song, 0.0, 0.25, true)),
        3.0,
    )
    .await;
    let gain = level(&loud, 0.5, 1.0, 2000) - level(&quiet, 0.5, 1.0, 2000);
    assert!(
        (gain - 12.04).abs() < 0.5,
        "four times the volume is +12 dB: {gain:.2}"
    );
}

#[tokio::test]
async fn short_music_loops_and_fades_out_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let short = tone(dir.path(), "short.wav", 2000, 2.0);
    let out = mix(
        dir.path(),
        "looped.wav",
        None,
        Some(&music(&short, 0.0, 0.5, true)),
        8.0,
    )
    .await;
    let first = level(&out, 0.5, 1.5, 2000);
    let third_loop = level(&out, 4.5, 5.5, 2000);
    assert!(
        (first - third_loop).abs() < 1.0,
        "still playing after it ran out: {first} vs {third_loop}"
    );
    let last = level(&out, 7.8, 8.0, 2000);
    assert!(
        first - last > 10.0,
        "faded out over the last 1.5 s: {last} vs {first}"
    );

    // No music and no voice: silence of the template's duration.
    let silent = mix(dir.path(), "silent.wav", None, None, 2.0).await;
    assert!(level(&silent, 0.0, 2.0, 1000) < -90.0);
}

#[tokio::test]
async fn effects_shape_the_voice() {
    let dir = tempfile::tempdir().unwrap();
    let voice = tone(dir.path(), "voice.wav", 300, 6.0);
    let settings = RenderSettings::default();
    let cancel = CancellationToken::new();
    let out = dir.path().join("shaped.wav");
    let effects = [
        Effect::Trim {
            start: 1.0,
            end: Some(4.0),
        },
        Effect::FadeIn { duration: 1.0 },
        Effect::Volume { level: 0.5 },
    ];
    let duration = voice_track(&voice, &effects, &out, &settings, &cancel)
        .await
        .unwrap();
    assert!((duration - 3.0).abs() < 0.03, "trimmed to 3 s: {duration}");
    let start = level(&out, 0.0, 0.2, 300);
    let middle = level(&out, 1.5, 2.5, 300);
    assert!(middle - start > 10.0, "fades in: {start} then {middle}");
    let plain = dir.path().join("plain.wav");
    voice_track(&voice, &[], &plain, &settings, &cancel)
        .await
        .unwrap();
    let halved = level(&plain, 1.5, 2.5, 300) - middle;
    assert!(
        (halved - 6.02).abs() < 0.5,
        "volume 0.5 is −6 dB: {halved:.2}"
    );

    let normalized = dir.path().join("loud.wav");
    voice_track(
        &voice,
        &[Effect::Normalize],
        &normalized,
        &settings,
        &cancel,
    )
    .await
    .unwrap();
    assert!(level(&normalized, 1.0, 5.0, 300) > -40.0);

    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"not audio at all").unwrap();
    let error = voice_track(&garbage, &[], &dir.path().join("x.wav"), &settings, &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(error, genq_media::MediaError::InvalidAudio(_)),
        "{error}"
    );
}
