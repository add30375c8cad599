//! Fitting text into a box: wrapped at word boundaries by cosmic-text
//! (Unicode line breaking, bidi, font fallback), shrunk until it fits, and
//! cut at a whole line with an ellipsis when even the smallest size does not.

use cosmic_text::{Attrs, Buffer, Family, FontSystem, Metrics, Shaping, Weight, Wrap};

use crate::fonts::Fonts;
use crate::format::{Align, TextLayer, VerticalAlign};

/// Sizes are searched down to this step, in pixels.
const SIZE_STEP: f32 = 0.5;
const ELLIPSIS: char = '…';

/// Text laid out in its box, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct LaidText {
    pub size: f32,
    pub lines: Vec<Line>,
    /// Whether lines were dropped because even `minSize` did not fit.
    pub truncated: bool,
}

/// One line, in logical order (the drawing engine reorders bidi runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub text: String,
    /// The line's left edge, from the box's left.
    pub left: f32,
    /// The baseline, from the box's top.
    pub baseline: f32,
    pub width: f32,
    pub right_to_left: bool,
}

struct Attempt {
    lines: Vec<Line>,
    height: f32,
    widest: f32,
}

/// Lays `text` out in `layer`'s box, in at most `width` × `height` pixels.
pub fn fit(fonts: &Fonts, layer: &TextLayer, text: &str, width: f32, height: f32) -> LaidText {
    let family = fonts.canonical_family(&layer.font);
    let attrs = Attrs::new()
        .family(Family::Name(&family))
        .weight(Weight(layer.weight));
    let mut system = fonts.layout();
    let mut try_size =
        |size: f32, wrap: Wrap| lay_out(&mut system, &attrs, layer, text, size, wrap, width);
    let fits = |a: &Attempt| a.height <= height + 0.01 && a.widest <= width + 0.01;

    let largest = layer.size as f32;
    let smallest = (layer.min_size() as f32).min(largest);
    let first = try_size(largest, Wrap::Word);
    let (size, attempt) = if fits(&first) {
        (largest, first)
    } else {
        let at_smallest = try_size(smallest, Wrap::Word);
        if fits(&at_smallest) {
            // The largest size that fits lies in (smallest, largest).
            let (mut low, mut high, mut best) = (smallest, largest, at_smallest);
            while high - low > SIZE_STEP {
                let mid = (low + high) / 2.0;
                let attempt = try_size(mid, Wrap::Word);
                if fits(&attempt) {
                    low = mid;
                    best = attempt;
                } else {
                    high = mid;
                }
            }
            (low, best)
        } else {
            // A word wider than the box is broken between glyphs; lines that
            // still do not fit are dropped below.
            (smallest, try_size(smallest, Wrap::WordOrGlyph))
        }
    };
    let mut laid = LaidText {
        size,
        lines: attempt.lines,
        truncated: false,
    };
    let line_height = size * layer.line_height as f32;
    let fitting = ((height + 0.01) / line_height).floor().max(0.0) as usize;
    if laid.lines.len() > fitting {
        laid.lines.truncate(fitting);
        laid.truncated = true;
        if let Some(last) = laid.lines.last_mut() {
            let ellipsised = ellipsise(&mut system, &attrs, size, &last.text, width);
            let measured = lay_out(
                &mut system,
                &attrs,
                layer,
                &ellipsised,
                size,
                Wrap::None,
                width,
            );
            if let Some(line) = measured.lines.first() {
                last.text = line.text.clone();
                last.width = line.width;
                last.right_to_left = line.right_to_left;
            }
        }
    }
    let used = laid.lines.len() as f32 * line_height;
    let top = match layer.vertical_align {
        VerticalAlign::Top => 0.0,
        VerticalAlign::Middle => ((height - used) / 2.0).max(0.0),
        VerticalAlign::Bottom => (height - used).max(0.0),
    };
    for line in &mut laid.lines {
        line.baseline += top;
        let align = layer.align.unwrap_or(if line.right_to_left {
            Align::Right
        } else {
            Align::Left
        });
        line.left = match align {
            Align::Left => 0.0,
            Align::Center => ((width - line.width) / 2.0).max(0.0),
            Align::Right => (width - line.width).max(0.0),
        };
    }
    laid
}

fn lay_out(
    system: &mut FontSystem,
    attrs: &Attrs,
    layer: &TextLayer,
    text: &str,
    size: f32,
    wrap: Wrap,
    width: f32,
) -> Attempt {
    let line_height = size * layer.line_height as f32;
    let mut buffer = Buffer::new(system, Metrics::new(size, line_height));
    buffer.set_wrap(system, wrap);
    buffer.set_size(system, Some(width), None);
    buffer.set_text(system, text, attrs, Shaping::Advanced, None);
    buffer.shape_until_scroll(system, false);
    let mut lines = Vec::new();
    let mut widest = 0.0f32;
    for run in buffer.layout_runs() {
        let start = run.glyphs.iter().map(|g| g.start).min().unwrap_or(0);
        let end = run.glyphs.iter().map(|g| g.end).max().unwrap_or(0);
        let line_text = run.text[start..end].trim_end().to_owned();
        // cosmic-text counts trailing spaces in a wrapped line's width.
        let trailing: f32 = run
            .glyphs
            .iter()
            .filter(|g| g.start >= start + line_text.len())
            .map(|g| g.w)
            .sum();
        let line_width = (run.line_w - trailing).max(0.0);
        widest = widest.max(line_width);
        lines.push(Line {
            text: line_text,
            left: 0.0,
            baseline: run.line_y,
            width: line_width,
            right_to_left: run.rtl,
        });
    }
    let height = lines.len() as f32 * line_height;
    Attempt {
        lines,
        height,
        widest,
    }
}

/// `text` shortened at a character boundary so that it and an ellipsis fit
/// in `width`.
fn ellipsise(system: &mut FontSystem, attrs: &Attrs, size: f32, text: &str, width: f32) -> String {
    let mut kept: Vec<char> = text.chars().collect();
    loop {
        let candidate: String = kept.iter().collect::<String>().trim_end().to_owned() + "…";
        let mut buffer = Buffer::new(system, Metrics::new(size, size));
        buffer.set_wrap(system, Wrap::None);
        buffer.set_text(system, &candidate, attrs, Shaping::Advanced, None);
        buffer.shape_until_scroll(system, false);
        let w = buffer.layout_runs().map(|r| r.line_w).fold(0.0, f32::max);
        if w <= width || kept.is_empty() {
            return if kept.is_empty() {
                ELLIPSIS.to_string()
            } else {
                candidate
            };
        }
        kept.pop();
    }
}
