//! Colours as templates write them: `#RGB`, `#RRGGBB`, `#RRGGBBAA` or a CSS
//! name.

/// An sRGB colour with alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    pub red: u8,
    pub green: u8,
    pub blue: u8,
    pub alpha: u8,
}

/// The names accepted besides hex (CSS colour keywords).
pub const COLOUR_NAMES: [(&str, [u8; 3]); 16] = [
    ("black", [0, 0, 0]),
    ("white", [255, 255, 255]),
    ("gray", [128, 128, 128]),
    ("grey", [128, 128, 128]),
    ("silver", [192, 192, 192]),
    ("navy", [0, 0, 128]),
    ("blue", [0, 0, 255]),
    ("teal", [0, 128, 128]),
    ("green", [0, 128, 0]),
    ("lime", [0, 255, 0]),
    ("yellow", [255, 255, 0]),
    ("orange", [255, 165, 0]),
    ("red", [255, 0, 0]),
    ("maroon", [128, 0, 0]),
    ("purple", [128, 0, 128]),
    ("transparent", [0, 0, 0]),
];

impl Colour {
    pub fn parse(text: &str) -> Option<Colour> {
        let text = text.trim();
        if let Some(hex) = text.strip_prefix('#') {
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let nibble = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok().map(|n| n * 17);
            let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
            return match hex.len() {
                3 => Some(Colour::opaque(nibble(0)?, nibble(1)?, nibble(2)?)),
                6 => Some(Colour::opaque(byte(0)?, byte(2)?, byte(4)?)),
                8 => Some(Colour {
                    alpha: byte(6)?,
                    ..Colour::opaque(byte(0)?, byte(2)?, byte(4)?)
                }),
                _ => None,
            };
        }
        let &(name, [red, green, blue]) = COLOUR_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))?;
        let alpha = if name == "transparent" { 0 } else { 255 };
        Some(Colour {
            red,
            green,
            blue,
            alpha,
        })
    }

    pub const fn opaque(red: u8, green: u8, blue: u8) -> Colour {
        Colour {
            red,
            green,
            blue,
            alpha: 255,
        }
    }

    /// `#rrggbb`, as an SVG paint (its alpha goes in an opacity attribute).
    pub fn svg_rgb(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.red, self.green, self.blue)
    }

    /// Alpha as SVG's `fill-opacity` takes it.
    pub fn opacity(self) -> f32 {
        f32::from(self.alpha) / 255.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses() {
        assert_eq!(
            Colour::parse("#101820"),
            Some(Colour::opaque(0x10, 0x18, 0x20))
        );
        assert_eq!(Colour::parse("#fff"), Some(Colour::opaque(255, 255, 255)));
        assert_eq!(
            Colour::parse("#000000cc"),
            Some(Colour {
                alpha: 0xcc,
                ..Colour::opaque(0, 0, 0)
            })
        );
        assert_eq!(Colour::parse("Navy"), Some(Colour::opaque(0, 0, 128)));
        assert_eq!(Colour::parse("transparent").map(|c| c.alpha), Some(0));
        for bad in [
            "",
            "#12345",
            "#1234567",
            "#GGGGGG",
            "101820",
            "chartreuse",
            "#+12",
        ] {
            assert_eq!(Colour::parse(bad), None, "{bad}");
        }
    }
}
