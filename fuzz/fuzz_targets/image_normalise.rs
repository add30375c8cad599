//! The image normaliser (`genq-media`'s `frame.rs`), through the `image`
//! crate's decoders as genq calls them: an upload the sniffer accepts as an
//! image (`MediaClass::Image`, as `shared/upload.rs` checks it) is decoded
//! under the normaliser's limits, oriented, flattened and fitted to an even
//! frame (`genq_media::fuzzing::load_normalized`, the `fuzzing` feature).
//! Every input, sniffed or not, also goes through `Picture::from_bytes`,
//! the header check of a template's pictures (PNG, JPEG, GIF, WebP).
//! The first byte picks the frame's long side and the background.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use genq_sniff::{MediaClass, SNIFF_BYTES};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("genq-fuzz-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("upload")
    })
}

/// Long sides the still renderer is set to (`--max-long-side`), and odd
/// ones.
const LONG_SIDES: [u32; 4] = [1920, 720, 17, 2];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, image)) = data.split_first() else {
        return;
    };
    let _ = genq_template::Picture::from_bytes(image.to_vec());
    if MediaClass::Image
        .accept(&image[..image.len().min(SNIFF_BYTES)])
        .is_none()
    {
        return;
    }
    let path = scratch();
    std::fs::write(path, image).unwrap();
    let long_side = LONG_SIDES[usize::from(choice & 3)];
    let background = if choice & 4 == 0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    };
    let _ = genq_media::fuzzing::load_normalized(path, long_side, background, 320);
});
