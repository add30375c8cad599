//! Real photographs for the tests, and copies of them made with the real
//! ffmpeg.
// Each test file uses a part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use image::DynamicImage;

/// scikit-image's sample photographs, which `scripts/deps --test` puts in
/// the repository's target/ (wherever cargo builds).
pub fn photo_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/fixtures/photos")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/deps --test to fetch the test photographs",
        path.display()
    );
    path
}

pub fn photo(name: &str) -> DynamicImage {
    let bytes = std::fs::read(photo_path(name)).expect("the photo reads");
    genq_vision::decode(&bytes).expect("the photo decodes")
}

/// The astronaut portrait (512×512) and the coffee cup (600×400).
pub fn astronaut() -> DynamicImage {
    photo("astronaut.png")
}

pub fn coffee() -> DynamicImage {
    photo("coffee.png")
}

/// `name` passed through an ffmpeg video filter, as a PNG in `dir`.
pub fn ffmpeg_copy(name: &str, filter: &str, dir: &Path) -> DynamicImage {
    let out = dir.join(format!(
        "{}-{}.png",
        name.trim_end_matches(".png"),
        filter.replace([':', '=', ',', '.'], "_")
    ));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(photo_path(name))
        .args(["-vf", filter])
        .arg(&out)
        .status()
        .expect("ffmpeg runs (scripts/deps installs it)");
    assert!(status.success(), "ffmpeg -vf {filter} failed on {name}");
    genq_vision::decode(&std::fs::read(&out).expect("ffmpeg's output reads"))
        .expect("ffmpeg's output decodes")
}
