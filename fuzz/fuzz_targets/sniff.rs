//! File-type sniffing (`genq-sniff`): what an upload is by its first
//! bytes, as `shared/upload.rs` asks it of the head of every file field
//! (at most `SNIFF_BYTES`), and the type named in a refusal.
#![no_main]

use genq_sniff::{sniffed_type, MediaClass, SNIFF_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(SNIFF_BYTES)];
    let _ = sniffed_type(head);
    if let Some(mime) = MediaClass::Image.accept(head) {
        assert!(
            matches!(mime, "image/jpeg" | "image/png" | "image/webp"),
            "{mime}"
        );
    }
    if let Some(mime) = MediaClass::Audio.accept(head) {
        assert!(
            matches!(
                mime,
                "audio/mpeg" | "audio/x-wav" | "audio/ogg" | "audio/opus" | "audio/mp4"
            ),
            "{mime}"
        );
    }
    // Nothing is both.
    assert!(MediaClass::Image.accept(head).is_none() || MediaClass::Audio.accept(head).is_none());
});
