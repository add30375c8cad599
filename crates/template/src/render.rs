//! A [`Scene`] drawn: to pixels by resvg (PNG, JPEG, a thumbnail) and to a
//! PDF page by svg2pdf, whose text stays text (fonts embedded and subset).

use std::io::Cursor;

use image::{ImageEncoder, RgbImage};
use resvg::tiny_skia::{Pixmap, Transform};

use crate::scene::Scene;
use crate::TemplateError;

const JPEG_QUALITY: u8 = 90;

impl Scene {
    /// The frame's pixels, `scale` times the canvas size, as RGB (the
    /// background shows through transparent parts as black).
    pub fn rgb(&self, scale: f32) -> Result<RgbImage, TemplateError> {
        let width = ((self.width as f32 * scale).round() as u32).max(1);
        let height = ((self.height as f32 * scale).round() as u32).max(1);
        let mut pixmap = Pixmap::new(width, height)
            .ok_or_else(|| TemplateError::new("canvas", "is too large to draw"))?;
        self.draw(Transform::from_scale(scale, scale), &mut pixmap.as_mut())?;
        let mut rgb = RgbImage::new(width, height);
        for (pixel, drawn) in rgb.pixels_mut().zip(pixmap.pixels()) {
            let c = drawn.demultiply();
            *pixel = image::Rgb([c.red(), c.green(), c.blue()]);
        }
        Ok(rgb)
    }

    /// The frame as a PNG at the canvas size.
    pub fn png(&self) -> Result<Vec<u8>, TemplateError> {
        let mut pixmap = Pixmap::new(self.width, self.height)
            .ok_or_else(|| TemplateError::new("canvas", "is too large to draw"))?;
        self.draw(Transform::identity(), &mut pixmap.as_mut())?;
        pixmap
            .encode_png()
            .map_err(|e| TemplateError::new("", format!("PNG encoding failed: {e}")))
    }

    /// The frame as a JPEG, `scale` times the canvas size.
    pub fn jpeg(&self, scale: f32) -> Result<Vec<u8>, TemplateError> {
        let rgb = self.rgb(scale)?;
        let mut out = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .write_image(
                &rgb,
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| TemplateError::new("", format!("JPEG encoding failed: {e}")))?;
        Ok(out.into_inner())
    }

    /// The frame as a one-page PDF, the page the canvas size at 72 dpi
    /// (one pixel, one point).
    pub fn pdf(&self) -> Result<Vec<u8>, TemplateError> {
        svg2pdf::to_pdf(
            &self.tree,
            svg2pdf::ConversionOptions::default(),
            svg2pdf::PageOptions::default(),
        )
        .map_err(|e| TemplateError::new("", format!("PDF conversion failed: {e}")))
    }
}
