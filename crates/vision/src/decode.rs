//! Uploaded photos to pixels, refusing those too large to hold.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The largest picture genq decodes, in pixels: a 50-megapixel photo
/// decodes to 150–200 MB. [`decode`] holds photos to it, and so do the
/// renderers' and templates' decoders (one cap for every picture).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Decodes an uploaded photo, turned upright as its EXIF orientation says
/// (a phone's portrait is often stored sideways, and faces are only found
/// upright). Photos over [`MAX_PIXELS`] are refused from their header,
/// before any pixel is decoded.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("the photo could not be read: {e}"))
    };
    let probe = reader()?;
    if probe.format().is_none() {
        return Err("the photo is not a JPEG, PNG, WebP, GIF or PNM image".into());
    }
    if genq_sniff::image_cut_short(bytes) {
        return Err("the photo could not be decoded: the file is truncated".into());
    }
    let (width, height) = probe
        .into_dimensions()
        .map_err(|e| format!("the photo's header could not be read: {e}"))?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "the photo is {width}×{height} ({:.0} megapixels); at most {} megapixels are allowed",
            (f64::from(width) * f64::from(height) / 1e6).ceil(),
            MAX_PIXELS / 1_000_000
        ));
    }
    let mut limits = Limits::default();
    // The header was read once already; hold the decoder to it.
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    let mut reader = reader()?;
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("the photo could not be decoded: {e}"))?;
    let orientation = decoder.orientation();
    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("the photo could not be decoded: {e}"))?;
    // A damaged EXIF block is no reason to refuse a photo that decodes.
    if let Ok(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}
