//! Face detection with SeetaFace's funnel-structured cascade (the `rustface`
//! port), on a copy of the picture scaled down for speed.

use std::sync::LazyLock;

use image::GrayImage;
use rustface::{ImageData, Model};

use crate::grey::{fit_grey, scale_factor};

/// SeetaFace's frontal-face model as rustface 0.1.7 ships it (see
/// `model/README.md`), parsed once per process.
static MODEL: LazyLock<Model> = LazyLock::new(|| {
    rustface::read_model(&include_bytes!("../model/seeta_fd_frontal_v1.0.bin")[..])
        .expect("the embedded SeetaFace model parses")
});

/// Detection runs on a copy whose long side is at most this. The cascade's
/// smallest window is 40 px (rustface ignores `set_min_face_size`), so the
/// smallest face found is about 6% of the long side (250 px of a 4000×3000
/// photo). The work grows with the pixels searched: 30–60 ms at 640 px,
/// about 85 ms at 800 px.
pub const DETECTION_SIZE: u32 = 640;

/// Measured on the 26 pictures of scikit-image's data set and variants of
/// its portraits: false detections scored 0.5–1.5, real faces 9.9–23.5
/// (blurred, darkened, tilted ±25°, mirrored, 320×240), and a face near
/// the smallest size 4.1. 2.0, SeetaFace's own example threshold, sits
/// between; rustface's default (3.85) is close to losing small faces.
const SCORE_THRESHOLD: f64 = 2.0;

/// One face: its box (square unless cut at the picture's edge), in the
/// pixels of the image searched, and the cascade's confidence (higher is
/// surer; faces found score at least 2).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub score: f64,
}

impl FaceBox {
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// This box in a picture `fx`×`fy` times the size of the one it was
    /// found in, clamped to `width`×`height`; `None` when nothing is left.
    pub(crate) fn scaled(&self, fx: f64, fy: f64, width: u32, height: u32) -> Option<FaceBox> {
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        let (right, bottom) = (x + f64::from(self.width), y + f64::from(self.height));
        clamped(
            (x * fx, y * fy, right * fx, bottom * fy),
            width,
            height,
            self.score,
        )
    }
}

fn clamped(edges: (f64, f64, f64, f64), width: u32, height: u32, score: f64) -> Option<FaceBox> {
    let (w, h) = (f64::from(width), f64::from(height));
    let x0 = edges.0.clamp(0.0, w).round() as u32;
    let y0 = edges.1.clamp(0.0, h).round() as u32;
    let x1 = edges.2.clamp(0.0, w).round() as u32;
    let y1 = edges.3.clamp(0.0, h).round() as u32;
    (x1 > x0 && y1 > y0).then_some(FaceBox {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
        score,
    })
}

/// Faces in a grey image, largest first, in that image's pixel coordinates.
///
/// The search runs on a copy whose long side is at most
/// [`DETECTION_SIZE`] (never enlarged), so faces smaller than about 6% of
/// the long side are not found; it finds roughly frontal faces, upright or
/// tilted up to about 25°. Boxes are clamped to the image.
pub fn detect_faces(grey: &GrayImage) -> Vec<FaceBox> {
    let (width, height) = grey.dimensions();
    // The cascade's window is 40 px: a smaller picture holds no face it can
    // see, and rustface's window arithmetic would underflow on it.
    if width < 40 || height < 40 {
        return Vec::new();
    }
    let scaled;
    let searched = if scale_factor(width, height, DETECTION_SIZE) < 1.0 {
        scaled = fit_grey(grey, DETECTION_SIZE);
        &scaled
    } else {
        grey
    };
    let (sw, sh) = searched.dimensions();
    // A detector owns a copy of the model and its buffers; making one costs
    // about 0.1 ms next to a detection's 40 ms, and keeps nothing per thread.
    let mut detector = rustface::create_detector_with_model(MODEL.clone());
    detector.set_score_thresh(SCORE_THRESHOLD);
    // SeetaFace's tuned pyramid (0.8 between levels) and 4 px step: a
    // coarser pyramid (0.7) saved a third of the time but scored the
    // astronaut lower and placed her box less steadily across sizes.
    detector.set_pyramid_scale_factor(0.8);
    detector.set_slide_window_step(4, 4);
    let found = detector.detect(&ImageData::new(searched.as_raw(), sw, sh));
    // Back to the caller's pixels, per axis: the scaled copy's sides were
    // rounded.
    let (fx, fy) = (
        f64::from(width) / f64::from(sw),
        f64::from(height) / f64::from(sh),
    );
    let mut faces: Vec<FaceBox> = found
        .iter()
        .filter_map(|face| {
            let b = face.bbox();
            let (x, y) = (f64::from(b.x()), f64::from(b.y()));
            let (right, bottom) = (x + f64::from(b.width()), y + f64::from(b.height()));
            clamped(
                (x * fx, y * fy, right * fx, bottom * fy),
                width,
                height,
                face.score(),
            )
        })
        .collect();
    faces.sort_by(|a, b| b.area().cmp(&a.area()).then(b.score.total_cmp(&a.score)));
    faces
}
