//! Turning an uploaded image into the exact frame the video shows.
//!
//! This is done in Rust rather than in ffmpeg because ffmpeg 5.1 ignores
//! JPEG EXIF orientation, can't bound memory on a decompression bomb, and
//! reports decode problems in ways that are hard to turn into a clear
//! user-facing error.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::error::ImageFormatHint;
use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

// The most pixels a picture may have: genq's one cap.
use genq_vision::MAX_PIXELS;

use crate::error::MediaError;

/// Larger than any real camera or phone photo, small enough to refuse
/// absurd headers before allocating anything.
pub(crate) const MAX_DIMENSION: u32 = 20_000;
/// The decoder's allocation budget; a bomb fails here instead of taking the
/// server's memory.
pub(crate) const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes `path`, applies EXIF orientation, flattens alpha onto
/// `background` and scales so the long side is at most `max_long_side` with
/// both sides even (H.264 in yuv420p subsamples chroma 2×2).
pub(crate) fn load_normalized(
    path: &Path,
    max_long_side: u32,
    background: [u8; 3],
) -> Result<RgbImage, MediaError> {
    let img = decode_oriented(path)?;
    let rgb = flatten(img, background);
    Ok(fit_even(rgb, max_long_side))
}

fn decode_oriented(path: &Path) -> Result<DynamicImage, MediaError> {
    // Uploads are at most --max-upload-mb, and the JPEG decoder reads the
    // whole file into memory anyway.
    let bytes = std::fs::read(path)?;
    let mut reader = ImageReader::new(Cursor::new(&bytes)).with_guessed_format()?;
    if genq_sniff::image_cut_short(&bytes) {
        return Err(MediaError::InvalidImage(TRUNCATED.to_owned()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(invalid_image)?;
    // A few hundred bytes can declare a huge picture that the decoder then
    // fills in at seconds of CPU and hundreds of MB (found by fuzzing):
    // refused from the header, at the template's and photo check's cap.
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(MediaError::InvalidImage(format!(
            "the image is {width}×{height} pixels; at most {} megapixels are allowed",
            MAX_PIXELS / 1_000_000
        )));
    }
    // A broken EXIF block shouldn't reject an otherwise fine photo; showing
    // it unrotated is the lesser evil.
    let orientation = decoder.orientation().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "ignoring unreadable EXIF orientation");
        Orientation::NoTransforms
    });
    let mut img = DynamicImage::from_decoder(decoder).map_err(invalid_image)?;
    img.apply_orientation(orientation);
    Ok(img)
}

const TRUNCATED: &str = "the file is truncated";

fn invalid_image(e: ImageError) -> MediaError {
    let reason = match e {
        ImageError::Limits(_) => format!(
            "the image is too large (the limit is {MAX_DIMENSION}×{MAX_DIMENSION} pixels \
             and {} MiB of decoded pixels)",
            MAX_ALLOC >> 20
        ),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.to_owned()
        }
        ImageError::Unsupported(e) => format!("unsupported image: {e}"),
        ImageError::Decoding(e) => {
            let kind = match e.format_hint() {
                ImageFormatHint::Exact(f) => format!("{f:?} ").to_uppercase(),
                _ => String::new(),
            };
            // The decoders' own messages can quote raw bytes from the file;
            // keep only printable ASCII so the job error stays readable.
            let detail: String = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(200)
                .collect();
            let mut reason = format!("the file is damaged or not a valid {kind}image");
            if !detail.trim().is_empty() {
                reason.push_str(&format!(" ({})", detail.trim()));
            }
            reason
        }
        other => other.to_string(),
    };
    MediaError::InvalidImage(reason)
}

fn flatten(img: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            let v = u32::from(src[c]) * a + u32::from(background[c]) * (255 - a);
            dst[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

/// Target size for `(w, h)`: long side ≤ `max_long_side`, aspect kept as
/// closely as rounding allows, both sides even and ≥ 2.
pub(crate) fn even_fit_size(w: u32, h: u32, max_long_side: u32) -> (u32, u32) {
    let max_long_side = max_long_side.max(2);
    let long = w.max(h).max(1);
    let (sw, sh) = if long > max_long_side {
        let scale = f64::from(max_long_side) / f64::from(long);
        (
            (f64::from(w) * scale).round() as u32,
            (f64::from(h) * scale).round() as u32,
        )
    } else {
        (w, h)
    };
    let even = |v: u32| (v & !1).max(2);
    (even(sw), even(sh))
}

fn fit_even(img: RgbImage, max_long_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (tw, th) = even_fit_size(w, h, max_long_side);
    if (tw, th) == (w, h) {
        return img;
    }
    let scaling = w.max(h) > max_long_side.max(2);
    if !scaling && tw <= w && th <= h {
        // Only odd sides to fix: dropping one edge row/column keeps the
        // image sharp, where a 321→320 resample would blur all of it.
        return imageops::crop_imm(&img, 0, 0, tw, th).to_image();
    }
    resize(&img, tw, th)
}

/// Lanczos in `image` allocates an f32 RGBA buffer of old-width × new-height,
/// which is hundreds of MiB for a huge photo; an integer box pre-shrink to
/// twice the target keeps that small at no visible cost.
fn resize(img: &RgbImage, tw: u32, th: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (pw, ph) = (tw.saturating_mul(2).min(w), th.saturating_mul(2).min(h));
    if (pw, ph) != (w, h) {
        let pre = imageops::thumbnail(img, pw, ph);
        return imageops::resize(&pre, tw, th, FilterType::Lanczos3);
    }
    imageops::resize(img, tw, th, FilterType::Lanczos3)
}

/// A copy whose long side is at most `long_side` (never enlarged).
pub(crate) fn shrink(img: &RgbImage, long_side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let long_side = long_side.max(1);
    if w.max(h) <= long_side {
        return img.clone();
    }
    let scale = f64::from(long_side) / f64::from(w.max(h));
    let tw = ((f64::from(w) * scale).round() as u32).clamp(1, long_side);
    let th = ((f64::from(h) * scale).round() as u32).clamp(1, long_side);
    resize(img, tw, th)
}

/// Binary PPM: no compression, so writing it and ffmpeg reading it cost
/// only the copy. Not synced: it is scratch that ffmpeg reads back through
/// the same page cache, and an fsync of 6 MB can stall for long on a disk
/// busy with other work.
pub(crate) fn write_ppm(img: &RgbImage, path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    write!(out, "P6\n{} {}\n255\n", img.width(), img.height())?;
    out.write_all(img.as_raw())?;
    out.flush()
}

pub(crate) fn write_jpeg(img: &RgbImage, path: &Path, quality: u8) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| match e {
            ImageError::IoError(e) => e,
            other => std::io::Error::other(other),
        })?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_fit_rounds_down_to_even() {
        assert_eq!(even_fit_size(321, 241, 1920), (320, 240));
        assert_eq!(even_fit_size(1, 1, 1920), (2, 2));
        assert_eq!(even_fit_size(4000, 3000, 1920), (1920, 1440));
        assert_eq!(even_fit_size(3000, 4000, 1920), (1440, 1920));
        assert_eq!(even_fit_size(400, 300, 201), (200, 150));
        assert_eq!(even_fit_size(10_000, 3, 100), (100, 2));
    }

    #[test]
    fn odd_sides_are_cropped_not_resampled() {
        let mut img = RgbImage::new(5, 3);
        img.put_pixel(0, 0, image::Rgb([200, 10, 10]));
        let out = fit_even(img, 1920);
        assert_eq!(out.dimensions(), (4, 2));
        assert_eq!(out.get_pixel(0, 0).0, [200, 10, 10]);
    }

    #[test]
    fn alpha_is_composited_over_background() {
        let mut img = image::RgbaImage::new(3, 1);
        img.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        img.put_pixel(1, 0, image::Rgba([255, 0, 0, 0]));
        img.put_pixel(2, 0, image::Rgba([255, 0, 0, 128]));
        let out = flatten(DynamicImage::ImageRgba8(img), [0, 0, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [0, 0, 255]);
        assert_eq!(out.get_pixel(2, 0).0, [128, 0, 127]);
    }

    #[test]
    fn a_jpeg_is_cut_short_before_its_end_marker() {
        let mut jpeg = Vec::new();
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        assert!(!genq_sniff::image_cut_short(&jpeg));
        // A trailer after the end (a motion photo's video) is not a fault.
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"....ftypmp42 and more");
        assert!(!genq_sniff::image_cut_short(&trailer));
        for cut in [3, 20, jpeg.len() / 2, jpeg.len() - 2, jpeg.len() - 1] {
            assert!(genq_sniff::image_cut_short(&jpeg[..cut]), "cut at {cut}");
        }
    }

    #[test]
    fn a_small_file_declaring_a_huge_picture_is_refused_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&RgbImage::new(16, 16))
            .unwrap();
        // The frame header (SOF0) says 16140×8208 instead: 132 megapixels.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&16140u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&8208u16.to_be_bytes());
        let path = dir.path().join("huge.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        let started = std::time::Instant::now();
        let refused = load_normalized(&path, 1920, [0, 0, 0]).unwrap_err();
        assert!(
            refused.to_string().contains("at most 50 megapixels"),
            "{refused}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn shrink_never_enlarges() {
        let img = RgbImage::new(100, 50);
        assert_eq!(shrink(&img, 320).dimensions(), (100, 50));
        assert_eq!(shrink(&img, 20).dimensions(), (20, 10));
    }
}
