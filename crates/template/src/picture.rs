//! The pictures a template shows: checked when they arrive, and fitted to
//! their boxes once per frame before the scene is drawn.
//!
//! For the pixel renders a picture is cropped and scaled to its box here
//! (SIMD convolution) and drawn in place of its layer: resvg decodes the
//! picture on every draw and samples it bicubically inside a clipped
//! layer, which took 200 of the 230 ms a 1080×1920 frame with one photo
//! cost. The PDF embeds the picture as it came, clipped the same way.

use std::io::Cursor;
use std::sync::Arc;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, MulDiv, PixelType, ResizeAlg, ResizeOptions, Resizer};
use resvg::tiny_skia::{IntSize, Pixmap};
use resvg::usvg;

use crate::format::{Fit, ImageLayer};

/// The most pixels a picture may have (genq's one cap,
/// [`genq_vision::MAX_PIXELS`]); the fetch's byte limit does not bound
/// this, a small file can describe a huge image.
pub const MAX_PICTURE_PIXELS: u64 = genq_vision::MAX_PIXELS;

/// A picture a layer shows: its bytes, whose header is known to be a
/// picture's.
#[derive(Clone)]
pub struct Picture {
    bytes: Arc<Vec<u8>>,
    format: PictureFormat,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PictureFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl Picture {
    /// Reads the picture's header; the error says why it is not a picture.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Picture, String> {
        let format = match image::guess_format(&bytes) {
            Ok(image::ImageFormat::Png) => PictureFormat::Png,
            Ok(image::ImageFormat::Jpeg) => PictureFormat::Jpeg,
            Ok(image::ImageFormat::Gif) => PictureFormat::Gif,
            Ok(image::ImageFormat::WebP) => PictureFormat::Webp,
            _ => return Err("is not a PNG, JPEG, GIF or WebP image".into()),
        };
        if genq_sniff::image_cut_short(&bytes) {
            return Err("is cut short: the file is truncated".into());
        }
        let (width, height) = image::ImageReader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())?
            .into_dimensions()
            .map_err(|e| format!("does not decode as an image: {e}"))?;
        if u64::from(width) * u64::from(height) > MAX_PICTURE_PIXELS {
            return Err(format!(
                "is too large to draw ({width}×{height}; at most {} megapixels)",
                MAX_PICTURE_PIXELS / 1_000_000
            ));
        }
        Ok(Picture {
            bytes: Arc::new(bytes),
            format,
            width,
            height,
        })
    }

    /// The picture's bytes as they came.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its MIME type.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            PictureFormat::Png => "image/png",
            PictureFormat::Jpeg => "image/jpeg",
            PictureFormat::Gif => "image/gif",
            PictureFormat::Webp => "image/webp",
        }
    }

    pub(crate) fn kind(&self) -> usvg::ImageKind {
        let bytes = Arc::clone(&self.bytes);
        match self.format {
            PictureFormat::Png => usvg::ImageKind::PNG(bytes),
            PictureFormat::Jpeg => usvg::ImageKind::JPEG(bytes),
            PictureFormat::Gif => usvg::ImageKind::GIF(bytes),
            PictureFormat::Webp => usvg::ImageKind::WEBP(bytes),
        }
    }

    /// Where the picture goes once fitted to `layer`'s box as `layer.fit`
    /// places it, snapped to whole pixels (at most half a pixel off the
    /// box's edges); from the picture's size alone.
    pub(crate) fn placement(&self, layer: &ImageLayer) -> Placement {
        let left = layer.x.round();
        let top = layer.y.round();
        let box_width = ((layer.x + layer.width).round() - left).max(1.0) as u32;
        let box_height = ((layer.y + layer.height).round() - top).max(1.0) as u32;
        let (width, height) = match layer.fit {
            Fit::Cover | Fit::Fill => (box_width, box_height),
            Fit::Contain => {
                let scale = f64::min(
                    f64::from(box_width) / f64::from(self.width.max(1)),
                    f64::from(box_height) / f64::from(self.height.max(1)),
                );
                (
                    ((f64::from(self.width) * scale).round() as u32).clamp(1, box_width),
                    ((f64::from(self.height) * scale).round() as u32).clamp(1, box_height),
                )
            }
        };
        Placement {
            x: left + f64::from((box_width - width) / 2),
            y: top + f64::from((box_height - height) / 2),
            width,
            height,
        }
    }

    /// The picture cropped (`cover`) and scaled to `placement`'s size, as
    /// the drawing engine's premultiplied pixels.
    pub(crate) fn fitted(&self, fit: Fit, placement: &Placement) -> Result<Pixmap, String> {
        let decoded = image::load_from_memory(&self.bytes)
            .map_err(|e| format!("does not decode as an image: {e}"))?;
        let has_alpha = decoded.color().has_alpha();
        let rgba = decoded.into_rgba8();
        let (width, height) = rgba.dimensions();
        let mut source = Image::from_vec_u8(width, height, rgba.into_raw(), PixelType::U8x4)
            .map_err(|e| format!("could not be scaled: {e}"))?;
        // Scaled premultiplied, the result is what a pixmap holds.
        if has_alpha {
            MulDiv::new()
                .multiply_alpha_inplace(&mut source)
                .map_err(|e| format!("could not be scaled: {e}"))?;
        }
        let mut scaled = Image::new(placement.width, placement.height, PixelType::U8x4);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
            .use_alpha(false);
        let options = match fit {
            Fit::Cover => options.fit_into_destination(None),
            Fit::Contain | Fit::Fill => options,
        };
        Resizer::new()
            .resize(&source, &mut scaled, &options)
            .map_err(|e| format!("could not be scaled: {e}"))?;
        IntSize::from_wh(placement.width, placement.height)
            .and_then(|size| Pixmap::from_vec(scaled.into_vec(), size))
            .ok_or_else(|| "could not be scaled".to_owned())
    }
}

/// Where a fitted picture is drawn, at its own size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub x: f64,
    pub y: f64,
    pub width: u32,
    pub height: u32,
}
