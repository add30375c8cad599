//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` cargo
//! feature, off in every normal build): the crate's private parsers of
//! untrusted bytes, each called as the renderers call it. Errors come back
//! as text; only a panic, a hang or a blown memory budget is a finding.

use std::path::Path;

use crate::{frame, h264, mp4};

/// The still renderer's mux (`mp4::write`): `m4a` read by the MP4 box
/// reader (`mp4/read.rs`) and, when it reads, written with a still video
/// of `frames` frames at 25 fps extended from `idr` (a real libx264 IDR)
/// to `out`, refusing audio longer than the video as `still/fast.rs` does.
pub fn mp4_mux(idr: &[u8], frames: u64, m4a: &Path, out: &Path) -> Result<(), String> {
    let fps = 25;
    let stream = h264::still_stream(idr, frames, 2 * u64::from(fps)).map_err(|e| e.to_string())?;
    let video = mp4::Video {
        stream: &stream,
        width: 160,
        height: 120,
        fps,
        colour: (1, 1, 1, false),
    };
    let max_audio_secs = frames as f64 / f64::from(fps) + 1.0 / f64::from(fps);
    mp4::write(out, &video, m4a, max_audio_secs).map_err(|e| e.to_string())
}

/// The H.264 parameter-set reader (`h264.rs`: SPS, PPS and the IDR's
/// slice header) on an Annex B stream, and, when it is accepted, every
/// frame of the still stream it extends to: its length in bytes.
pub fn still_stream(annex_b: &[u8], frames: u64, gop: u64) -> Result<usize, String> {
    let stream = h264::still_stream(annex_b, frames, gop).map_err(|e| e.to_string())?;
    let mut bytes = 0;
    for i in 0..stream.frames {
        bytes += stream.frame(i).0.iter().map(Vec::len).sum::<usize>();
    }
    Ok(bytes + stream.annex_b().len())
}

/// The image normaliser (`frame.rs`) on the file at `path`, as the still
/// renderer calls it: decoded under its limits, oriented, flattened onto
/// `background` and fitted to `max_long_side`, then the thumbnail's
/// shrink. The frame's size.
pub fn load_normalized(
    path: &Path,
    max_long_side: u32,
    background: [u8; 3],
    thumb_long_side: u32,
) -> Result<(u32, u32), String> {
    let img = frame::load_normalized(path, max_long_side, background).map_err(|e| e.to_string())?;
    let (w, h) = img.dimensions();
    // What the H.264 encoder is promised: both sides even, the long one
    // within bounds.
    assert!(w % 2 == 0 && h % 2 == 0 && w >= 2 && h >= 2, "{w}×{h}");
    assert!(
        w.max(h) <= max_long_side.max(2),
        "{w}×{h} for {max_long_side}"
    );
    let thumb = frame::shrink(&img, thumb_long_side);
    assert!(thumb.width() <= w && thumb.height() <= h);
    Ok((w, h))
}
