//! What a media file is, decided by its first bytes rather than by its name
//! or declared type.

mod whole;
pub use whole::image_cut_short;

/// What a file field is supposed to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaClass {
    Image,
    Audio,
}

impl MediaClass {
    /// Maps sniffed bytes to an accepted MIME type, or None.
    pub fn accept(self, head: &[u8]) -> Option<&'static str> {
        let sniffed = infer::get(head).map(|t| t.mime_type());
        match self {
            MediaClass::Image => match sniffed? {
                mime @ ("image/jpeg" | "image/png" | "image/webp") => Some(mime),
                _ => None,
            },
            MediaClass::Audio => match sniffed {
                Some(mime @ ("audio/mpeg" | "audio/x-wav" | "audio/ogg" | "audio/opus")) => {
                    Some(mime)
                }
                // M4A is an MP4 container; many recorders label it with a
                // generic MP4 brand, which sniffs as video/mp4.
                Some("audio/m4a" | "video/mp4" | "audio/mp4") => Some("audio/mp4"),
                Some(_) => None,
                None => is_mpeg_audio_frame(head).then_some("audio/mpeg"),
            },
        }
    }
}

/// An MP3 without an ID3 tag starts straight with an MPEG audio frame header
/// (11 sync bits, then a layer III marker), which `infer` only partly knows.
fn is_mpeg_audio_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && head[1] & 0x06 == 0x02
}

impl MediaClass {
    /// A human description of what is accepted, for error messages.
    pub fn accepted(self) -> &'static str {
        match self {
            MediaClass::Image => "a JPEG, PNG or WebP image",
            MediaClass::Audio => "an MP3, WAV, M4A or OGG file",
        }
    }
}

/// The MIME type the bytes look like, accepted or not (for error messages).
pub fn sniffed_type(head: &[u8]) -> Option<&'static str> {
    infer::get(head).map(|t| t.mime_type())
}

/// How many leading bytes decide a file's type.
pub const SNIFF_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(
            MediaClass::Image.accept(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some("image/png")
        );
        assert_eq!(MediaClass::Image.accept(b"hello, I am text"), None);
        assert_eq!(
            MediaClass::Audio.accept(b"ID3\x04\0\0\0\0\0\0"),
            Some("audio/mpeg")
        );
        assert_eq!(
            MediaClass::Audio.accept(&[0xFF, 0xF3, 0x64, 0xC4, 0, 0]),
            Some("audio/mpeg")
        );
        assert_eq!(
            MediaClass::Audio.accept(b"RIFF\x24\0\0\0WAVEfmt "),
            Some("audio/x-wav")
        );
        assert_eq!(
            MediaClass::Audio.accept(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            None
        );
    }
}
