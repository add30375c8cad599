//! A photo's quality check: is it large, sharp, well exposed and contrasted
//! enough, and does it show the faces a job needs?
//!
//! Every measure is taken on the **normalised grey image**: the photo's
//! luma (Rec. 709 weights on its gamma-encoded values, Y′ = 0.2126 R′ +
//! 0.7152 G′ + 0.0722 B′, alpha ignored), scaled with a bilinear filter so
//! its long side is at most 1024 px (never enlarged). Normalising makes
//! sharpness comparable between a 12-megapixel original and a small copy,
//! and keeps the check fast.

use image::{DynamicImage, GrayImage};
use serde::{Deserialize, Serialize};

pub use crate::decode::{decode, MAX_PIXELS};
use crate::faces::{detect_faces, FaceBox};
use crate::grey::{fit_grey, luma};

/// The long side of the normalised grey image.
pub const NORMALISED_SIZE: u32 = 1024;

/// A project's `qc` block: what a photo must be to pass. Every key is
/// optional (its default below); unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QcThresholds {
    /// The least width in pixels (default 400).
    pub min_width: u32,
    /// The least height in pixels (default 400).
    pub min_height: u32,
    /// The least sharpness: the variance of the 4-neighbour Laplacian of the
    /// normalised grey image, on a 0–255 scale (default 35).
    pub min_sharpness: f64,
    /// The least brightness: the mean luma, 0 (black) to 1 (white)
    /// (default 0.15).
    pub min_brightness: f64,
    /// The most brightness (default 0.85).
    pub max_brightness: f64,
    /// The least contrast: the standard deviation of luma on 0–1 (default
    /// 0.07; a photo of one flat colour has 0, the most possible is 0.5).
    pub min_contrast: f64,
    /// The fewest faces the photo must show (default 1; 0 for no face
    /// check).
    pub min_faces: u32,
    /// The most faces the photo may show (default 1); `null` for no limit.
    pub max_faces: Option<u32>,
    /// The least share of the photo's area the largest face's box must
    /// cover, 0 to 1 (default 0: any face size that is found).
    pub min_face_share: f64,
}

// Measured on scikit-image's photographs (normalised grey image; the
// astronaut is a 512×512 studio portrait, the coffee a 600×400 cup):
//                                   sharpness  brightness  contrast
//   astronaut / coffee                887 / 1585   0.442 / 0.387  0.296 / 0.231
//   blurred, ffmpeg gblur=sigma=1.5    55 / 42     (unchanged)
//   blurred, gblur=sigma=2             27 / 18
//   blurred, gblur=sigma=6            2.8 / 2.3
//   darkened, eq=brightness=-0.45     310 / 432    0.100 / 0.071  0.113 / 0.086
//   brightened, eq=brightness=0.4                  0.811 / 0.791
//   astronaut, eq=contrast=0.3 / 0.2                              0.090 / 0.061
// So: a slight softening passes and a plain blur fails (35), the darkened
// copies are a third to a half below the least brightness (0.15) and the
// originals 2.6–2.9 times above it, a white-background portrait still passes
// (0.85), and only a washed-out, nearly uniform photo is too flat (0.07).
impl Default for QcThresholds {
    fn default() -> QcThresholds {
        QcThresholds {
            min_width: 400,
            min_height: 400,
            min_sharpness: 35.0,
            min_brightness: 0.15,
            max_brightness: 0.85,
            min_contrast: 0.07,
            min_faces: 1,
            max_faces: Some(1),
            min_face_share: 0.0,
        }
    }
}

impl QcThresholds {
    /// Whether the thresholds make sense together; the error names the key
    /// as a project writes it.
    pub fn check(&self) -> Result<(), String> {
        let unit = |key: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("qc.{key}: must be from 0 to 1"))
            }
        };
        if !(self.min_sharpness.is_finite() && self.min_sharpness >= 0.0) {
            return Err("qc.minSharpness: must be a number from 0 up".into());
        }
        unit("minBrightness", self.min_brightness)?;
        unit("maxBrightness", self.max_brightness)?;
        if self.min_brightness > self.max_brightness {
            return Err("qc.minBrightness: must not be above qc.maxBrightness".into());
        }
        if !(0.0..=0.5).contains(&self.min_contrast) {
            return Err("qc.minContrast: must be from 0 to 0.5".into());
        }
        if self.max_faces.is_some_and(|max| max < self.min_faces) {
            return Err("qc.maxFaces: must not be below qc.minFaces".into());
        }
        unit("minFaceShare", self.min_face_share)
    }
}

/// What [`check_photo`] found: the photo's size, whether it passed (every
/// check did) and each check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhotoReport {
    pub width: u32,
    pub height: u32,
    pub passed: bool,
    pub checks: PhotoChecks,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhotoChecks {
    pub resolution: ResolutionCheck,
    pub sharpness: MeasureCheck,
    pub brightness: MeasureCheck,
    pub contrast: MeasureCheck,
    pub faces: FacesCheck,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolutionCheck {
    pub passed: bool,
    pub minimum_width: u32,
    pub minimum_height: u32,
    /// Why the check failed, for a person; only when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One measure against its bounds. Values are rounded as shown (sharpness
/// to 0.1, brightness and contrast to 0.001) before they are compared, so a
/// reason never contradicts the numbers next to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeasureCheck {
    pub passed: bool,
    pub value: f64,
    pub minimum: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FacesCheck {
    pub passed: bool,
    pub count: u32,
    /// Largest first, in the photo's pixels.
    pub boxes: Vec<FaceBox>,
    /// The largest box's area over the photo's (0 without a face).
    pub largest_share: f64,
    pub minimum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
    #[serde(skip_serializing_if = "is_zero")]
    pub minimum_share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Checks a photo against `thresholds` (assumed [`QcThresholds::check`]ed).
///
/// On the normalised grey image (see the module): **sharpness** is the
/// variance of its 4-neighbour Laplacian on 0–255 values, **brightness** its
/// mean luma on 0–1, **contrast** the standard deviation of its luma on
/// 0–1. **Faces** are those [`detect_faces`] finds in it, reported in the
/// photo's pixels; `largest_share` is the largest box's area over the
/// photo's. **Resolution** is the photo's own width and height.
pub fn check_photo(image: &DynamicImage, thresholds: &QcThresholds) -> PhotoReport {
    check_photo_with(image, thresholds, None)
}

/// As [`check_photo`], with the faces another detector found (a project's
/// face-detection model), in the photo's pixels; `None` uses
/// [`detect_faces`]. Boxes are clamped to the photo.
pub fn check_photo_with(
    image: &DynamicImage,
    thresholds: &QcThresholds,
    found: Option<Vec<FaceBox>>,
) -> PhotoReport {
    let (width, height) = (image.width(), image.height());
    let grey = fit_grey(&luma(image), NORMALISED_SIZE);
    let (brightness, contrast) = mean_and_deviation(&grey);
    let resolution = resolution_check(width, height, thresholds);
    let sharpness = measure(
        round(laplacian_variance(&grey), 1),
        thresholds.min_sharpness,
        None,
        |v, min, _| format!("the photo is blurry: sharpness {v} is below {min}"),
    );
    let brightness = measure(
        round(brightness, 3),
        thresholds.min_brightness,
        Some(thresholds.max_brightness),
        |v, min, max| match max {
            Some(max) => format!("the photo is too bright: brightness {v} is above {max}"),
            None => format!("the photo is too dark: brightness {v} is below {min}"),
        },
    );
    let contrast = measure(
        round(contrast, 3),
        thresholds.min_contrast,
        None,
        |v, min, _| format!("the photo has too little contrast: contrast {v} is below {min}"),
    );
    // Found on the normalised image (no face is lost that detection at
    // 640 px would find) and moved back into the photo's pixels.
    let (fx, fy) = (
        f64::from(width) / f64::from(grey.width()),
        f64::from(height) / f64::from(grey.height()),
    );
    let mut boxes: Vec<FaceBox> = match found {
        Some(found) => found
            .iter()
            .filter_map(|face| face.scaled(1.0, 1.0, width, height))
            .collect(),
        None => detect_faces(&grey)
            .iter()
            .filter_map(|face| face.scaled(fx, fy, width, height))
            .collect(),
    };
    for face in &mut boxes {
        face.score = round(face.score, 2);
    }
    boxes.sort_by_key(|face| std::cmp::Reverse(face.area()));
    let faces = faces_check(boxes, width, height, thresholds);
    let passed = resolution.passed
        && sharpness.passed
        && brightness.passed
        && contrast.passed
        && faces.passed;
    PhotoReport {
        width,
        height,
        passed,
        checks: PhotoChecks {
            resolution,
            sharpness,
            brightness,
            contrast,
            faces,
        },
    }
}

fn resolution_check(width: u32, height: u32, t: &QcThresholds) -> ResolutionCheck {
    let passed = width >= t.min_width && height >= t.min_height;
    ResolutionCheck {
        passed,
        minimum_width: t.min_width,
        minimum_height: t.min_height,
        reason: (!passed).then(|| {
            format!(
                "the photo is {width}×{height}; at least {}×{} is needed",
                t.min_width, t.min_height
            )
        }),
    }
}

/// `value` against `minimum` and `maximum`; `reason` is told which bound
/// failed: the maximum as `Some`, the minimum as `None`.
fn measure(
    value: f64,
    minimum: f64,
    maximum: Option<f64>,
    reason: impl Fn(f64, f64, Option<f64>) -> String,
) -> MeasureCheck {
    let failure = if value < minimum {
        Some(reason(value, minimum, None))
    } else {
        maximum
            .filter(|max| value > *max)
            .map(|max| reason(value, minimum, Some(max)))
    };
    MeasureCheck {
        passed: failure.is_none(),
        value,
        minimum,
        maximum,
        reason: failure,
    }
}

fn faces_check(boxes: Vec<FaceBox>, width: u32, height: u32, t: &QcThresholds) -> FacesCheck {
    let count = boxes.len() as u32;
    let area = (u64::from(width) * u64::from(height)).max(1) as f64;
    let largest_share = round(boxes.first().map_or(0.0, |b| b.area() as f64 / area), 4);
    let faces = |n: u32| {
        if n == 1 {
            "1 face was".to_owned()
        } else {
            format!("{n} faces were")
        }
    };
    let reason = if count < t.min_faces {
        Some(match count {
            0 => "no face was found".to_owned(),
            n => format!("{} found; at least {} are needed", faces(n), t.min_faces),
        })
    } else if let Some(max) = t.max_faces.filter(|max| count > *max) {
        Some(match max {
            0 => format!("{} found; the photo must show none", faces(count)),
            1 => format!("{} found; at most 1 is allowed", faces(count)),
            max => format!("{} found; at most {max} are allowed", faces(count)),
        })
    } else if count > 0 && largest_share < t.min_face_share {
        Some(format!(
            "the face is too small: it covers {}% of the photo; at least {}% is needed",
            round(largest_share * 100.0, 1),
            round(t.min_face_share * 100.0, 1)
        ))
    } else {
        None
    };
    FacesCheck {
        passed: reason.is_none(),
        count,
        boxes,
        largest_share,
        minimum: t.min_faces,
        maximum: t.max_faces,
        minimum_share: t.min_face_share,
        reason,
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Mean and standard deviation of the luma, on 0–1.
fn mean_and_deviation(grey: &GrayImage) -> (f64, f64) {
    let mut histogram = [0u64; 256];
    for &v in grey.as_raw() {
        histogram[usize::from(v)] += 1;
    }
    let n = grey.as_raw().len().max(1) as f64;
    let sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(v, &c)| v as f64 * c as f64)
        .sum();
    let mean = sum / n;
    let var: f64 = histogram
        .iter()
        .enumerate()
        .map(|(v, &c)| (v as f64 - mean).powi(2) * c as f64)
        .sum::<f64>()
        / n;
    (mean / 255.0, var.sqrt() / 255.0)
}

/// Variance of the 4-neighbour Laplacian (up + down + left + right − 4 ×
/// centre) over the pixels that have all four neighbours, on 0–255 values:
/// edges and texture give large responses, a blurred photo small ones.
fn laplacian_variance(grey: &GrayImage) -> f64 {
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let px = grey.as_raw();
    let (mut sum, mut sum_sq) = (0i64, 0i64);
    for y in 1..h - 1 {
        let (up, row, down) = (
            &px[(y - 1) * w..y * w],
            &px[y * w..(y + 1) * w],
            &px[(y + 1) * w..(y + 2) * w],
        );
        // Exact integer sums per row: a 1024-wide row's squares stay far
        // below i64's range, and the compiler vectorises the loop.
        let (mut s, mut sq) = (0i64, 0i64);
        for x in 1..w - 1 {
            let l = i32::from(up[x])
                + i32::from(down[x])
                + i32::from(row[x - 1])
                + i32::from(row[x + 1])
                - 4 * i32::from(row[x]);
            s += i64::from(l);
            sq += i64::from(l * l);
        }
        sum += s;
        sum_sq += sq;
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum as f64 / n;
    sum_sq as f64 / n - mean * mean
}
