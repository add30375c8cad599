//! The built-in talking head: no learned model, just the avatar's own
//! pixels warped. The jaw drops with the voice's loudness, a dark mouth
//! opens at the lip line, and the head sways slowly. Everything is placed
//! from the face box SeetaFace finds, in fractions of its height (`face`).
//!
//! Per frame, each pixel of the moving region is taken from the source at
//! an offset (head motion, then jaw drop) with bilinear sampling, and the
//! gap the jaw opens under the upper lip is filled with a dark mouth
//! interior. Masks are separable (one weight per column times one per row),
//! made once.

use std::f32::consts::TAU;

use image::{DynamicImage, RgbImage};

use crate::faces::{detect_faces, FaceBox};
use crate::grey::luma;

/// A rectangle of the avatar, in its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

// Where things are on a SeetaFace box, in box heights from its top-left,
// measured on the astronaut portrait: the lips meet at 0.79, the mouth
// spans 0.30–0.72 across, the chin ends near 1.10.
const LIP_LINE: f32 = 0.79;
const MOUTH_CENTRE_X: f32 = 0.5;
/// How far the jaw drops at full openness: 8% of the face.
const JAW_DROP: f32 = 0.08;
/// The jaw drops fully within this distance of the mouth's centre and not
/// at all beyond `JAW_OUTER` (the mouth's corners): the opening is a lens
/// as wide as the mouth, and the cheeks beside it stay.
const JAW_INNER: f32 = 0.04;
const JAW_OUTER: f32 = 0.22;
/// The chin moves with the jaw down to here, and the neck below it takes
/// the stretch until `NECK_END`.
const CHIN_END: f32 = 1.08;
const NECK_END: f32 = 1.28;
/// The moving region: the box grown by this much on each side, and down to
/// `REGION_BOTTOM`; head motion fades out over `FEATHER` from its border.
const REGION_MARGIN: f32 = 0.2;
const REGION_BOTTOM: f32 = 1.32;
const FEATHER: f32 = 0.2;
/// Head motion: a roll about the chin and a nod, each a sine with its own
/// period so the two never fall into step. Largest displacement inside the
/// face: 0.008 × 1.25 (forehead to chin) + 0.004 ≈ 1.4% of its height.
const ROLL: f32 = 0.008;
const ROLL_PERIOD: f32 = 3.7;
const NOD: f32 = 0.004;
const NOD_PERIOD: f32 = 2.9;
/// The mouth interior: dark red-brown, nearly opaque in the middle of the
/// opening and fading towards the lips over a quarter of it at each side.
const INTERIOR_RGB: [f32; 3] = [46.0, 18.0, 20.0];
const INTERIOR_ALPHA: f32 = 0.92;
const INTERIOR_SOFT: f32 = 0.25;

/// What one avatar's animation needs, prepared once.
pub struct TalkingHead {
    region: Rect,
    /// The region's original pixels, with a copy of the last column and
    /// row beyond them so bilinear sampling needs no bounds of its own.
    source: Vec<[u8; 3]>,
    /// Head-motion weight per column and per row (their product per pixel):
    /// 1 over the face, 0 at the region's border.
    motion_x: Vec<f32>,
    motion_y: Vec<f32>,
    /// Jaw weight per column and per row (times the motion weight).
    jaw_x: Vec<f32>,
    jaw_y: Vec<f32>,
    /// The columns where `jaw_x` is not 0.
    jaw_columns: std::ops::Range<usize>,
    /// In region pixels: the face's height, the roll's pivot (the chin)
    /// and the lip line.
    face: f32,
    pivot: (f32, f32),
    lip: f32,
}

impl TalkingHead {
    /// `avatar` is the avatar picture exactly as it appears in the video
    /// (RGB, already fitted to its box). Finds the face; Err("no face was
    /// found in the picture") when there is none.
    pub fn new(avatar: RgbImage) -> Result<TalkingHead, String> {
        let avatar = DynamicImage::ImageRgb8(avatar);
        let found = detect_faces(&luma(&avatar));
        let face = found
            .first()
            .ok_or_else(|| "no face was found in the picture".to_owned())?;
        Ok(TalkingHead::around(
            avatar.as_rgb8().expect("made as RGB"),
            face,
        ))
    }

    fn around(avatar: &RgbImage, face_box: &FaceBox) -> TalkingHead {
        let face = face_box.height as f32;
        let (bx, by) = (face_box.x as f32, face_box.y as f32);
        let region = region_around(avatar.width(), avatar.height(), bx, by, face);
        let source = padded(avatar, region);
        // Face geometry in region pixels.
        let (ox, oy) = (bx - region.x as f32, by - region.y as f32);
        let mouth_x = ox + MOUTH_CENTRE_X * face;
        let lip = oy + LIP_LINE * face;
        let feather = (FEATHER * face).max(1.0);
        let motion_x = (0..region.width)
            .map(|x| border_weight(x, region.width, feather))
            .collect();
        let motion_y = (0..region.height)
            .map(|y| border_weight(y, region.height, feather))
            .collect();
        let jaw_x: Vec<f32> = (0..region.width)
            .map(|x| {
                let off = (x as f32 - mouth_x).abs() / face;
                1.0 - smoothstep(JAW_INNER, JAW_OUTER, off)
            })
            .collect();
        let first = jaw_x.iter().position(|&j| j > 0.0).unwrap_or(0);
        let end = jaw_x
            .iter()
            .rposition(|&j| j > 0.0)
            .map_or(first, |last| last + 1);
        let jaw_columns = first..end;
        let jaw_y = (0..region.height)
            .map(|y| {
                let below = (y as f32 - oy) / face;
                if below < LIP_LINE {
                    0.0
                } else {
                    1.0 - smoothstep(CHIN_END, NECK_END, below)
                }
            })
            .collect();
        TalkingHead {
            region,
            source,
            motion_x,
            motion_y,
            jaw_x,
            jaw_y,
            jaw_columns,
            face,
            pivot: (mouth_x, oy + CHIN_END * face),
            lip,
        }
    }

    /// The rectangle of the avatar that any frame may change (mouth region
    /// and head-motion margin), in avatar pixels: callers only
    /// re-encode/overlay this region. Its corner and sides are even (for
    /// 4:2:0 chroma).
    pub fn moving_region(&self) -> Rect {
        self.region
    }

    /// Writes one frame of the moving region into `out` (RGB24,
    /// `moving_region` width × height × 3 bytes): `openness` 0..=1 (mouth,
    /// from loudness), `t_secs` (the frame's time) for the head motion.
    /// Openness 0 at a time the motion is 0 (t = 0) gives the original
    /// pixels exactly.
    ///
    /// # Panics
    /// When `out` is not the region's size.
    pub fn frame(&self, openness: f32, t_secs: f32, out: &mut [u8]) {
        let (w, h) = (self.region.width as usize, self.region.height as usize);
        assert_eq!(
            out.len(),
            w * h * 3,
            "frame buffer must be the moving region's size"
        );
        let openness = if openness.is_finite() {
            openness.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let roll = ROLL * (TAU * t_secs / ROLL_PERIOD).sin();
        let nod = NOD * self.face * (TAU * t_secs / NOD_PERIOD).sin();
        let drop = JAW_DROP * self.face * openness;
        let alpha_max = INTERIOR_ALPHA * smoothstep(0.0, 0.3, openness);
        let (px, py) = self.pivot;
        // Per row: first where each pixel reads from (plain float arithmetic
        // over arrays, which the compiler vectorises), then the reads; one
        // pixel at a time, the two took half as long again.
        let (mut from_x, mut from_y, mut dark) =
            (vec![0.0f32; w], vec![0.0f32; w], vec![0.0f32; w]);
        let (mut fixed_x, mut fixed_y) = (vec![0u32; w], vec![0u32; w]);
        let (max_x, max_y) = ((w - 1) as f32, (h - 1) as f32);
        for y in 0..h {
            let (my, jy) = (self.motion_y[y], self.jaw_y[y]);
            let row = &mut out[y * w * 3..(y + 1) * w * 3];
            // Where each pixel was before the head moved: a small-angle roll
            // about the chin, plus the nod.
            let roll_x = roll * (y as f32 - py);
            for (x, (fx, fy)) in from_x.iter_mut().zip(from_y.iter_mut()).enumerate() {
                let motion = self.motion_x[x] * my;
                *fx = x as f32 + roll_x * motion;
                *fy = y as f32 - (roll * (x as f32 - px) + nod) * motion;
            }
            // Below the lip line the jaw pulls the face down: read from `gap`
            // higher up. What would come from above the lip line is the
            // opening: the lip line's own row, under the dark interior.
            let jaw_row = drop > 0.0 && jy > 0.0;
            if jaw_row {
                for x in self.jaw_columns.clone() {
                    let (qy, motion) = (from_y[x], self.motion_x[x] * my);
                    let gap = drop * self.jaw_x[x] * jy * motion;
                    dark[x] = 0.0;
                    if qy > self.lip {
                        from_y[x] = (qy - gap).max(self.lip);
                        if qy - self.lip < gap {
                            let depth = (qy - self.lip) / gap;
                            dark[x] = alpha_max
                                * smoothstep(0.0, INTERIOR_SOFT, depth)
                                * (1.0 - smoothstep(1.0 - INTERIOR_SOFT, 1.0, depth));
                        }
                    }
                }
            }
            // In 256ths of a pixel, inside the region.
            for (fixed, from) in fixed_x.iter_mut().zip(&from_x) {
                *fixed = (from.clamp(0.0, max_x) * 256.0 + 0.5) as u32;
            }
            for (fixed, from) in fixed_y.iter_mut().zip(&from_y) {
                *fixed = (from.clamp(0.0, max_y) * 256.0 + 0.5) as u32;
            }
            for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
                self.sample(fixed_x[x], fixed_y[x], pixel);
                if jaw_row && dark[x] > 0.0 {
                    for (c, interior) in pixel.iter_mut().zip(INTERIOR_RGB) {
                        *c = (f32::from(*c) + (interior - f32::from(*c)) * dark[x] + 0.5) as u8;
                    }
                }
            }
        }
    }

    /// The source at a position in 256ths of a pixel, bilinearly: exact
    /// at whole pixels. Pixels as arrays and the padding keep it to four
    /// checked reads.
    #[inline]
    fn sample(&self, x: u32, y: u32, out: &mut [u8]) {
        let w = self.region.width as usize;
        let (x0, y0, fx, fy) = ((x >> 8) as usize, (y >> 8) as usize, x & 255, y & 255);
        let at = y0 * (w + 1) + x0;
        let (p00, p10) = (self.source[at], self.source[at + 1]);
        let (p01, p11) = (self.source[at + w + 1], self.source[at + w + 2]);
        for c in 0..3 {
            let top = u32::from(p00[c]) * (256 - fx) + u32::from(p10[c]) * fx;
            let bottom = u32::from(p01[c]) * (256 - fx) + u32::from(p11[c]) * fx;
            out[c] = ((top * (256 - fy) + bottom * fy + 32768) >> 16) as u8;
        }
    }
}

/// The region's pixels, one more column and row repeating the last.
fn padded(avatar: &RgbImage, region: Rect) -> Vec<[u8; 3]> {
    let (w, h) = (region.width as usize, region.height as usize);
    let mut source = Vec::with_capacity((w + 1) * (h + 1));
    for y in region.y..region.y + region.height {
        let start = (y as usize * avatar.width() as usize + region.x as usize) * 3;
        let row = &avatar.as_raw()[start..start + w * 3];
        source.extend(row.chunks_exact(3).map(|p| [p[0], p[1], p[2]]));
        source.push(source[source.len() - 1]);
    }
    source.extend_from_within((h - 1) * (w + 1)..h * (w + 1));
    source
}

/// The box grown by the margins, clamped to the avatar, with even corner
/// and sides.
fn region_around(width: u32, height: u32, bx: f32, by: f32, face: f32) -> Rect {
    let even_down = |v: f32| (v.max(0.0) as u32) & !1;
    let x0 = even_down(bx - REGION_MARGIN * face);
    let y0 = even_down(by - REGION_MARGIN * face);
    let x1 = (((bx + (1.0 + REGION_MARGIN) * face).ceil() as u32 + 1) & !1).min(width & !1);
    let y1 = (((by + REGION_BOTTOM * face).ceil() as u32 + 1) & !1).min(height & !1);
    Rect {
        x: x0,
        y: y0,
        width: x1.saturating_sub(x0),
        height: y1.saturating_sub(y0),
    }
}

/// 0 on the first and last pixel, rising smoothly to 1 over `feather`
/// pixels inwards.
fn border_weight(i: u32, len: u32, feather: f32) -> f32 {
    let from_edge = i.min(len.saturating_sub(1).saturating_sub(i)) as f32;
    smoothstep(0.0, feather, from_edge)
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Mouth openness per video frame, 0..=1, from mono f32 PCM.
///
/// Each frame's loudness is the RMS of its own `sample_rate / fps` samples.
/// It is normalised against the clip's loud level (the 95th percentile of
/// the frames above the noise floor), so a quiet recording moves the mouth
/// as much as a loud one; below the gate (a fifth of that level, and never
/// less than −46 dBFS) it is 0. Then it is smoothed as a mouth moves: it
/// opens within a frame (20 ms time constant) and closes over a few (80 ms).
pub fn openness_envelope(samples: &[f32], sample_rate: u32, fps: f32) -> Vec<f32> {
    if samples.is_empty() || sample_rate == 0 || !(fps.is_finite() && fps > 0.0) {
        return Vec::new();
    }
    let per_frame = f64::from(sample_rate) / f64::from(fps);
    let frames = (samples.len() as f64 / per_frame).ceil().max(1.0) as usize;
    let rms: Vec<f32> = (0..frames)
        .map(|i| {
            let start = ((i as f64 * per_frame).round() as usize).min(samples.len());
            let end = (((i + 1) as f64 * per_frame).round() as usize).clamp(start, samples.len());
            let window = &samples[start..end];
            let energy: f64 = window.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (energy / window.len().max(1) as f64).sqrt() as f32
        })
        .collect();
    const FLOOR: f32 = 0.005;
    let mut loud: Vec<f32> = rms.iter().copied().filter(|&r| r > FLOOR).collect();
    if loud.is_empty() {
        return vec![0.0; frames];
    }
    loud.sort_by(f32::total_cmp);
    let reference = loud[((loud.len() - 1) as f32 * 0.95).round() as usize];
    let gate = (0.2 * reference).max(FLOOR);
    let attack = 1.0 - (-1.0 / (fps * 0.020)).exp();
    let release = 1.0 - (-1.0 / (fps * 0.080)).exp();
    let mut level = 0.0f32;
    rms.iter()
        .map(|&r| {
            let target = ((r - gate) / (reference - gate).max(f32::EPSILON)).clamp(0.0, 1.0);
            let k = if target > level { attack } else { release };
            level += (target - level) * k;
            // The release tails off geometrically; a closed mouth is 0.
            if level < 0.01 {
                level = 0.0;
            }
            level
        })
        .collect()
}
