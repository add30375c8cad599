//! The H.264 SPS/PPS and slice-header reader (`genq-media`'s `h264.rs`),
//! through `genq_media::fuzzing::still_stream` (the `fuzzing` feature):
//! the input's first byte sets the frame count (1 to 64) and the second
//! the keyframe interval (1 to 64); the rest is the Annex B stream libx264
//! would have written for the one IDR picture.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [frames, gop, stream @ ..] = data else {
        return;
    };
    let frames = u64::from(frames % 64) + 1;
    let gop = u64::from(gop % 64) + 1;
    let _ = genq_media::fuzzing::still_stream(stream, frames, gop);
});
