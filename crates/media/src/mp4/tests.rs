use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::h264::still_stream;

pub(crate) fn ffmpeg(args: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed to run these tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{args:?}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn ffprobe(args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An IDR extended to `frames` frames, and an M4A of `secs` of audio, as
/// the still renderer makes them.
pub(crate) fn inputs(dir: &Path, frames: u64, secs: f64) -> (StillStream, PathBuf) {
    let idr = dir.join("idr.h264");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-x264-params",
        "keyint=50:bframes=0:ref=1:weightp=0:cabac=0",
        "-pix_fmt",
        "yuv420p",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-r",
        "25",
        "-f",
        "h264",
        s(&idr),
    ]);
    let stream = still_stream(&std::fs::read(&idr).unwrap(), frames, 50).unwrap();
    let m4a = dir.join("audio.m4a");
    // Noise needs the full bitrate, so a minute of it fills more than one
    // of the 1 MiB chunks ffmpeg writes.
    let src = format!("anoisesrc=d={secs}:r=48000:a=0.3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src,
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-f",
        "mp4",
        s(&m4a),
    ]);
    (stream, m4a)
}

pub(crate) fn video(stream: &StillStream) -> Video<'_> {
    Video {
        stream,
        width: 160,
        height: 120,
        fps: 25,
        colour: (1, 1, 1, false),
    }
}

#[test]
fn audio_that_needs_cutting_is_left_to_ffmpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let (stream, m4a) = inputs(tmp.path(), 25, 1.0);
    let out = tmp.path().join("out.mp4");
    let err = write(&out, &video(&stream), &m4a, 0.9).unwrap_err();
    assert!(matches!(err, MuxError::Unsupported(_)), "{err:?}");
}

#[test]
fn only_a_plain_single_audio_track_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let (stream, _) = inputs(tmp.path(), 25, 1.0);
    let two_tracks = tmp.path().join("two.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=d=1",
        "-c:a",
        "aac",
        s(&two_tracks),
    ]);
    let not_mp4 = tmp.path().join("junk.m4a");
    std::fs::write(&not_mp4, b"\0\0\0\x10junkjunkjunk\0\0\0\xffmoov").unwrap();
    let out = tmp.path().join("out.mp4");
    for input in [two_tracks, not_mp4] {
        let err = write(&out, &video(&stream), &input, 10.0).unwrap_err();
        assert!(matches!(err, MuxError::Unsupported(_)), "{err:?}");
    }
}

#[test]
fn offsets_past_4_gib_use_co64() {
    let mut o = Out::default();
    chunk_layout(&mut o, &[(8, 2), (1 << 33, 2), ((1 << 33) + 9, 1)], true);
    let b = &o.0;
    // stsc: two runs (2 per chunk from chunk 1, 1 from chunk 3).
    assert_eq!(&b[4..8], b"stsc");
    assert_eq!(b[12..16], 2u32.to_be_bytes());
    assert_eq!(b[16..28], [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1]);
    assert_eq!(b[28..40], [0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(&b[44..48], b"co64");
    assert_eq!(b[56..64], 8u64.to_be_bytes());
    assert_eq!(b[64..72], (1u64 << 33).to_be_bytes());
}

#[test]
fn neighbouring_samples_are_read_in_one_go() {
    assert_eq!(
        contiguous(&[(10, 5), (15, 5), (30, 1), (31, 2), (40, 1)]),
        [(10, 10), (30, 3), (40, 1)]
    );
}

#[test]
fn samples_are_placed_by_stsc_runs() {
    // Chunks 1–2 hold three samples each, chunks 3–4 two each.
    let mut stsc = vec![0, 0, 0, 0, 0, 0, 0, 2];
    for v in [1u32, 3, 1, 3, 2, 1] {
        stsc.extend_from_slice(&v.to_be_bytes());
    }
    let sizes = [10; 10];
    let placed = read::place(&sizes, &[100, 200, 300, 400], &stsc).unwrap();
    let offsets: Vec<u64> = placed.iter().map(|p| p.0).collect();
    assert_eq!(offsets, [100, 110, 120, 200, 210, 220, 300, 310, 400, 410]);
    assert!(read::place(&sizes[..9], &[100, 200, 300, 400], &stsc).is_err());
}

/// Found by the `mp4_boxes` fuzz target
/// (fuzz/corpus/mp4_boxes/stts-billions-of-samples): one `stts` entry of
/// a few bytes claimed 2^32 samples, and every one was pushed (seconds of
/// work and gigabytes) before the count was compared with `stsz`'s.
#[test]
fn an_stts_entry_cannot_claim_more_samples_than_there_are() {
    let mut stts = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stts.extend_from_slice(&u32::MAX.to_be_bytes());
    stts.extend_from_slice(&1024u32.to_be_bytes());
    assert!(read::decode_times(&stts, 3).is_err());
    let mut exact = vec![0, 0, 0, 0, 0, 0, 0, 1];
    exact.extend_from_slice(&3u32.to_be_bytes());
    exact.extend_from_slice(&1024u32.to_be_bytes());
    assert_eq!(read::decode_times(&exact, 3).unwrap(), [0, 1024, 2048]);
}

/// The same for a fixed-size `stsz`: its count must fit in the file.
#[test]
fn a_fixed_size_stsz_cannot_claim_more_data_than_the_file_holds() {
    let mut stsz = vec![0, 0, 0, 0];
    stsz.extend_from_slice(&1u32.to_be_bytes());
    stsz.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(read::sample_sizes(&stsz, 4096).is_err());
    let mut fits = vec![0, 0, 0, 0];
    fits.extend_from_slice(&300u32.to_be_bytes());
    fits.extend_from_slice(&3u32.to_be_bytes());
    assert_eq!(read::sample_sizes(&fits, 4096).unwrap(), [300; 3]);
}

#[test]
fn a_chunk_offset_near_2_pow_64_is_refused() {
    let mut stsc = vec![0, 0, 0, 0, 0, 0, 0, 1];
    for v in [1u32, 2, 1] {
        stsc.extend_from_slice(&v.to_be_bytes());
    }
    assert!(read::place(&[10, 10], &[u64::MAX - 5], &stsc).is_err());
}
