//! Fixtures made with the real ffmpeg at test time, and inspection helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use genq_media::{probe, MediaInfo};
use tokio_util::sync::CancellationToken;

pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed to run these tests");
    assert!(
        out.status.success(),
        "fixture ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A single-frame image from a lavfi source (`testsrc`, `color=...`).
pub fn lavfi_image(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        source,
        "-frames:v",
        "1",
        path.to_str().unwrap(),
    ]);
    path
}

pub fn test_jpeg(dir: &Path, w: u32, h: u32) -> PathBuf {
    lavfi_image(dir, "img.jpg", &format!("testsrc=size={w}x{h}"))
}

pub fn sine(dir: &Path, name: &str, secs: f64, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let src = format!("sine=frequency=440:duration={secs}");
    let mut args = vec!["-f", "lavfi", "-i", &src];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

pub fn mp3(dir: &Path, secs: f64) -> PathBuf {
    sine(dir, "audio.mp3", secs, &["-c:a", "libmp3lame"])
}

pub fn wav(dir: &Path, secs: f64) -> PathBuf {
    sine(dir, "audio.wav", secs, &[])
}

pub async fn ffprobe(path: &Path) -> MediaInfo {
    probe(
        Path::new("ffprobe"),
        path,
        Duration::from_secs(30),
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("ffprobe {}: {e}", path.display()))
}

/// Top-level MP4 box types in file order.
pub fn mp4_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        let size = match size32 {
            0 => (data.len() - pos) as u64,
            1 => u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()),
            n => n,
        };
        assert!(size >= 8, "corrupt box {kind} at {pos}");
        boxes.push(kind);
        pos += size as usize;
    }
    boxes
}

/// Puts an EXIF APP1 segment holding only an Orientation tag right after the
/// JPEG's SOI marker, as a phone camera would.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "not a JPEG");
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2A"); // big-endian TIFF
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after header
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding to 4 bytes
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);

    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Pids of live processes whose argv mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

pub fn rgb_at(img: &image::RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

/// Runs ffmpeg/ffprobe (`program`) and returns stdout, failing the test on
/// anything printed to stderr at `-v error`: a decoder's complaint is a
/// failure even when it recovers.
pub fn run_clean(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{program} {args:?}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MD5 of every decoded video frame, decoding the whole stream.
pub fn frame_md5s(video: &Path) -> Vec<String> {
    let out = run_clean(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-i",
            video.to_str().unwrap(),
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ],
    );
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

/// `(profile, level)` of the first video stream, e.g. `("High", 40)`.
pub fn profile_and_level(video: &Path) -> (String, u32) {
    let out = run_clean(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=profile,level",
            "-of",
            "default=noprint_wrappers=1",
            video.to_str().unwrap(),
        ],
    );
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_owned()
    };
    (field("profile"), field("level").parse().unwrap())
}

/// Presentation times of the video's keyframes, in seconds.
pub fn keyframe_times(video: &Path) -> Vec<f64> {
    let out = run_clean(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            video.to_str().unwrap(),
        ],
    );
    out.lines()
        .filter_map(|l| {
            let (t, flags) = l.split_once(',')?;
            flags.starts_with('K').then(|| t.parse().unwrap())
        })
        .collect()
}

/// The video's last frame, decoded.
pub fn last_frame(video: &Path) -> image::RgbImage {
    let png = video.with_file_name("last-frame.png");
    run_clean(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-sseof",
            "-1",
            "-i",
            video.to_str().unwrap(),
            "-map",
            "0:v:0",
            "-update",
            "1",
            "-y",
            png.to_str().unwrap(),
        ],
    );
    let img = image::open(&png).unwrap().into_rgb8();
    std::fs::remove_file(png).unwrap();
    img
}

/// Mean absolute difference per channel value (0–255) of two same-size
/// images.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}
