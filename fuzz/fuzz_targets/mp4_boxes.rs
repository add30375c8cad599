//! The MP4 box reader (`genq-media`'s `mp4/read.rs`) and the mux it feeds
//! (`mp4::write`), through `genq_media::fuzzing::mp4_mux` (the `fuzzing`
//! feature): the input's first byte sets the still video's length (1 to
//! 256 frames at 25 fps, so how much audio is taken), the rest is the M4A
//! ffmpeg would have transcoded the upload's audio into.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A real libx264 IDR (160×120), as `still/fast.rs` has ffmpeg make it.
const IDR: &[u8] = include_bytes!("../fixtures/idr.h264");

fn scratch() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("genq-fuzz-mp4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        (dir.join("audio.m4a"), dir.join("out.mp4"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&frames, m4a)) = data.split_first() else {
        return;
    };
    let (m4a_path, out_path) = scratch();
    std::fs::write(m4a_path, m4a).unwrap();
    let _ = genq_media::fuzzing::mp4_mux(IDR, u64::from(frames) + 1, m4a_path, out_path);
});
