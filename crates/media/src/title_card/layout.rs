//! Word wrapping and font sizing for title cards, done here because ffmpeg
//! 5.1's drawtext neither wraps nor centres lines.
//!
//! Widths are estimated from character counts rather than measured glyphs:
//! no font library is needed, and the generous average below keeps lines
//! inside the frame for ordinary text.

/// DejaVu Sans averages about 0.55 em per character in mixed text; erring
/// wide keeps capitals-heavy lines inside the frame.
const AVG_CHAR_EM: f64 = 0.6;
/// Share of the width and height the text block may use.
const TEXT_AREA: f64 = 0.85;
const LINE_SPACING: f64 = 1.3;
/// More lines than this read as a page rather than a title, so the font
/// shrinks first.
pub(crate) const MAX_LINES: usize = 8;
/// Font sizes as fractions of the card's short side, so portrait cards get
/// the same type size as landscape ones rather than one scaled to their
/// height.
const LARGEST: f64 = 1.0 / 12.0;
const SMALLEST: f64 = 1.0 / 30.0;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub font_size: u32,
    pub line_height: u32,
    /// Top to bottom; an empty line is the gap between paragraphs.
    pub lines: Vec<String>,
}

/// The largest font size at which `text` fits in at most [`MAX_LINES`]
/// lines (or, failing that, at the smallest size if the lines still fit
/// vertically); `None` if even that overflows the card.
pub(crate) fn layout(text: &str, width: u32, height: u32) -> Option<Layout> {
    let paragraphs = paragraphs(text);
    let short = f64::from(width.min(height));
    let smallest = (short * SMALLEST).round().max(8.0) as u32;
    let mut size = (short * LARGEST).round().max(8.0) as u32;
    loop {
        let per_line = (f64::from(width) * TEXT_AREA / (f64::from(size) * AVG_CHAR_EM)) as usize;
        let lines = wrap(&paragraphs, per_line.max(1));
        let line_height = (f64::from(size) * LINE_SPACING).round() as u32;
        let fits = lines.len() as f64 * f64::from(line_height) <= f64::from(height) * TEXT_AREA;
        let candidate = Layout {
            font_size: size,
            line_height,
            lines,
        };
        if fits && candidate.lines.len() <= MAX_LINES {
            return Some(candidate);
        }
        if size <= smallest {
            return fits.then_some(candidate);
        }
        size = ((f64::from(size) * 0.9) as u32).max(smallest);
    }
}

/// The text's paragraphs with whitespace normalised; a run of blank lines
/// becomes a single empty paragraph.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.trim().lines() {
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() && out.last().is_none_or(String::is_empty) {
            continue;
        }
        out.push(words.join(" "));
    }
    out
}

/// Greedy wrapping at `per_line` characters; a word longer than a line is
/// split wherever it must be.
fn wrap(paragraphs: &[String], per_line: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in paragraphs {
        if para.is_empty() {
            lines.push(String::new());
            continue;
        }
        let mut line = String::new();
        let mut line_chars = 0;
        for word in para.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > per_line {
                if line_chars > 0 {
                    lines.push(std::mem::take(&mut line));
                    line_chars = 0;
                }
                lines.push(word.drain(..per_line).collect());
            }
            let needed = if line_chars == 0 {
                word.len()
            } else {
                line_chars + 1 + word.len()
            };
            if needed > per_line {
                lines.push(std::mem::take(&mut line));
                line_chars = 0;
            }
            if word.is_empty() {
                continue;
            }
            if line_chars > 0 {
                line.push(' ');
                line_chars += 1;
            }
            line.extend(word.iter());
            line_chars += word.len();
        }
        if line_chars > 0 {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap_text(text: &str, per_line: usize) -> Vec<String> {
        wrap(&paragraphs(text), per_line)
    }

    #[test]
    fn wraps_at_word_boundaries() {
        assert_eq!(
            wrap_text("the quick brown fox jumps", 10),
            ["the quick", "brown fox", "jumps"]
        );
        assert_eq!(wrap_text("exactly10c next", 10), ["exactly10c", "next"]);
    }

    #[test]
    fn long_words_are_split() {
        assert_eq!(
            wrap_text("a abcdefghijkl b", 5),
            ["a", "abcde", "fghij", "kl b"]
        );
    }

    #[test]
    fn paragraphs_are_kept_and_blank_runs_collapsed() {
        assert_eq!(
            wrap_text("  one \r\n\n\n\n two  three\n", 20),
            ["one", "", "two three"]
        );
    }

    #[test]
    fn short_text_gets_the_largest_size() {
        let l = layout("Hello", 1280, 720).unwrap();
        assert_eq!(l.font_size, 60);
        assert_eq!(l.lines, ["Hello"]);
        let portrait = layout("Hello", 1080, 1920).unwrap();
        assert_eq!(portrait.font_size, 90);
    }

    #[test]
    fn long_text_shrinks_to_fit_eight_lines() {
        let text = "word ".repeat(60);
        for (w, h) in [(1280, 720), (1920, 1080), (1080, 1920), (720, 1280)] {
            let l = layout(&text, w, h).unwrap();
            assert!(l.lines.len() <= MAX_LINES, "{w}x{h}: {}", l.lines.len());
            assert!(l.font_size < (w.min(h) / 12), "{w}x{h}");
            let widest = l.lines.iter().map(|s| s.chars().count()).max().unwrap();
            let est = widest as f64 * f64::from(l.font_size) * AVG_CHAR_EM;
            assert!(est <= f64::from(w) * TEXT_AREA, "{w}x{h}: {est}");
        }
    }

    #[test]
    fn too_many_lines_do_not_fit() {
        assert!(layout(&"a\n\nb\n\n".repeat(40), 1280, 720).is_none());
    }
}
