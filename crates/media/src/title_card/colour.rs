//! Background colours and the text colour that reads on each.

use std::sync::LazyLock;

use regex::Regex;

/// Background names accepted besides `#RRGGBB` (CSS values).
pub const COLOUR_NAMES: [(&str, [u8; 3]); 14] = [
    ("black", [0, 0, 0]),
    ("white", [255, 255, 255]),
    ("gray", [128, 128, 128]),
    ("grey", [128, 128, 128]),
    ("silver", [192, 192, 192]),
    ("navy", [0, 0, 128]),
    ("blue", [0, 0, 255]),
    ("teal", [0, 128, 128]),
    ("green", [0, 128, 0]),
    ("yellow", [255, 255, 0]),
    ("orange", [255, 165, 0]),
    ("red", [255, 0, 0]),
    ("maroon", [128, 0, 0]),
    ("purple", [128, 0, 128]),
];

/// What [`parse_colour`] accepts, as a pattern the published schema carries
/// (ECMA-262 has no case-insensitive flag inside a pattern: each letter of
/// a name is a class of both cases).
pub(crate) static BACKGROUND: LazyLock<Regex> = LazyLock::new(|| {
    let names: Vec<String> = COLOUR_NAMES
        .iter()
        .map(|(name, _)| {
            name.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c))
                .collect()
        })
        .collect();
    Regex::new(&format!(r"^\s*(#[0-9A-Fa-f]{{6}}|{})\s*$", names.join("|")))
        .expect("a valid pattern")
});

const LIGHT_TEXT: [u8; 3] = [255, 255, 255];
/// Near-black rather than black: softer on light backgrounds.
const DARK_TEXT: [u8; 3] = [0x11, 0x18, 0x27];

pub(crate) fn parse_colour(s: &str) -> Option<[u8; 3]> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        return Some([byte(0)?, byte(2)?, byte(4)?]);
    }
    COLOUR_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, rgb)| rgb)
}

/// WCAG relative luminance, 0 (black) to 1 (white).
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// Whichever of light or dark text has the higher WCAG contrast ratio.
pub(crate) fn text_colour_for(background: [u8; 3]) -> [u8; 3] {
    let bg = luminance(background);
    let contrast = |text: [u8; 3]| {
        let t = luminance(text);
        (t.max(bg) + 0.05) / (t.min(bg) + 0.05)
    };
    if contrast(LIGHT_TEXT) >= contrast(DARK_TEXT) {
        LIGHT_TEXT
    } else {
        DARK_TEXT
    }
}

/// As ffmpeg's colour options take it.
pub(crate) fn hex([r, g, b]: [u8; 3]) -> String {
    format!("0x{r:02X}{g:02X}{b:02X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_accepts_what_parses() {
        for colour in ["#1a2B3c", "navy", "Grey", " white ", "PURPLE"] {
            assert!(BACKGROUND.is_match(colour), "{colour}");
            assert!(parse_colour(colour).is_some(), "{colour}");
        }
        for colour in ["#GGGGGG", "#fff", "#1a2b3c4d", "navyblue", "", "rgb(0,0,0)"] {
            assert!(!BACKGROUND.is_match(colour), "{colour}");
            assert!(parse_colour(colour).is_none(), "{colour}");
        }
    }

    #[test]
    fn colours_parse() {
        assert_eq!(parse_colour("#101828"), Some([0x10, 0x18, 0x28]));
        assert_eq!(parse_colour("#FFffFF"), Some([255, 255, 255]));
        assert_eq!(parse_colour("Navy"), Some([0, 0, 128]));
        for bad in [
            "",
            "#12345",
            "#1234567",
            "#GGGGGG",
            "101828",
            "chartreuse",
            "#+12345",
        ] {
            assert_eq!(parse_colour(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_contrasts_with_background() {
        // Pure red is a near tie that WCAG gives to dark text.
        for dark in ["#000000", "#101828", "navy", "maroon", "blue", "purple"] {
            let bg = parse_colour(dark).unwrap();
            assert_eq!(text_colour_for(bg), LIGHT_TEXT, "{dark}");
        }
        for light in ["#FFFFFF", "yellow", "silver", "orange", "#E0F2FE"] {
            let bg = parse_colour(light).unwrap();
            assert_eq!(text_colour_for(bg), DARK_TEXT, "{light}");
        }
    }
}
