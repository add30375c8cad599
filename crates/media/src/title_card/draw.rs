//! The ffmpeg filter graph that draws a card's lines.

use std::path::{Path, PathBuf};

use super::colour::hex;
use super::layout::Layout;

pub(super) const FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// `format=rgb24` first so the background colour is exact in the frame (and
/// so in the poster); the conversion to video colours happens at encoding.
pub(super) fn filter_graph(
    layout: &Layout,
    text_colour: [u8; 3],
    lines: &[(usize, PathBuf)],
    height: u32,
) -> String {
    let Layout {
        font_size,
        line_height,
        lines: ref all_lines,
    } = *layout;
    let block = line_height * all_lines.len() as u32;
    let top = height.saturating_sub(block) / 2;
    let font = filter_value(Path::new(FONT_FILE));
    let mut graph = String::from("format=rgb24");
    for (i, path) in lines {
        // Baselines rather than tops are placed: drawtext's `ascent` is that
        // of the glyphs drawn, so "ace" and "Ag" lines would not align
        // otherwise. 0.36 em is half DejaVu Sans' cap height, which centres
        // capitals in the line box.
        let baseline = top
            + line_height * *i as u32
            + line_height / 2
            + (f64::from(font_size) * 0.36).round() as u32;
        graph.push_str(&format!(
            ",drawtext=fontfile={font}:textfile={}:expansion=none:fontsize={font_size}\
             :fontcolor={}:x=(w-text_w)/2:y={baseline}-ascent",
            filter_value(path),
            hex(text_colour),
        ));
    }
    graph
}

/// Escapes a path for use as a filter option inside a filter graph: once for
/// the option list (`:`), then again for the graph (`,;[]`), both of which
/// also treat `\` and `'` specially and trim whitespace.
fn filter_value(path: &Path) -> String {
    fn escape(s: &str, special: &[char]) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if special.contains(&c) || c.is_whitespace() {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
    let option = escape(&path.to_string_lossy(), &['\\', '\'', ':']);
    escape(&option, &['\\', '\'', '[', ']', ',', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_survive_both_levels_of_parsing() {
        assert_eq!(filter_value(Path::new("/a/b.txt")), "/a/b.txt");
        assert_eq!(filter_value(Path::new("/a:b")), r"/a\\:b");
        assert_eq!(filter_value(Path::new("/a'b")), r"/a\\\'b");
        assert_eq!(filter_value(Path::new(r"/a\b")), r"/a\\\\b");
        assert_eq!(filter_value(Path::new("/a,b[c];")), r"/a\,b\[c\]\;");
        assert_eq!(filter_value(Path::new("/a b")), r"/a\\\ b");
    }
}
