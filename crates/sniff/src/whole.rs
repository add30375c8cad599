//! Whether an image file ends where its own structure says it does. Image
//! decoders are lenient with a file cut short (zune-jpeg paints what is
//! missing grey and succeeds; the WebP decoder says only "Corrupt
//! bitstream"), so every place genq decodes an uploaded or fetched picture
//! asks this first.

/// Whether `bytes`, a JPEG or WebP file, stop before their end. PNG (whose
/// decoder fails a file cut short by itself) and other formats: false.
pub fn image_cut_short(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        !jpeg_is_whole(bytes)
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        !riff_is_whole(bytes)
    } else {
        false
    }
}

/// Whether a JPEG's segments run to its end-of-image marker. The decoder
/// (zune-jpeg, as lenient as browsers) paints what a file cut short lacks
/// in grey and succeeds, and its strict mode also refuses the stray bytes
/// real cameras write; only truncation is refused here. Segments with a
/// length (an EXIF thumbnail's own markers among them) are skipped whole;
/// entropy-coded data after each SOS runs to the next marker that is not
/// a stuffed 0xFF00 or a restart marker; bytes between segments that are
/// not a marker are passed over, as the decoder does.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let mut at = 2;
    loop {
        let Some(skip) = bytes
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
        else {
            return false;
        };
        at += skip;
        while bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return false;
        };
        at += 2;
        match marker {
            0xD9 => return true,
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(&[high, low]) = bytes.get(at..at + 2) else {
            return false;
        };
        at += usize::from(u16::from_be_bytes([high, low]));
        if at > bytes.len() {
            return false;
        }
        if marker == 0xDA {
            // The scan's data: up to the next real marker.
            loop {
                let Some(skip) = bytes[at..].iter().position(|&b| b == 0xFF) else {
                    return false;
                };
                at += skip;
                match bytes.get(at + 1) {
                    None => return false,
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => at += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Whether a RIFF file (WebP) holds as many bytes as its header says; the
/// decoder says only "Corrupt bitstream" of one cut short.
fn riff_is_whole(bytes: &[u8]) -> bool {
    match bytes.get(4..8) {
        Some(&[a, b, c, d]) => {
            let size = u64::from(u32::from_le_bytes([a, b, c, d])) + 8;
            bytes.len() as u64 >= size
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webp_is_cut_short_when_it_holds_less_than_its_header_says() {
        let mut webp = b"RIFF".to_vec();
        webp.extend_from_slice(&20u32.to_le_bytes());
        webp.extend_from_slice(b"WEBPVP8 ");
        webp.extend_from_slice(&[0; 12]);
        assert!(!image_cut_short(&webp));
        assert!(image_cut_short(&webp[..webp.len() - 1]));
        assert!(image_cut_short(&webp[..12]));
    }

    #[test]
    fn other_files_are_never_cut_short() {
        assert!(!image_cut_short(b"\x89PNG\r\n\x1a\n"));
        assert!(!image_cut_short(b""));
        assert!(!image_cut_short(b"RIFF\x04\x00\x00\x00WAVE"));
    }
}
