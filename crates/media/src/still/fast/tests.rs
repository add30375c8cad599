use std::path::Path;

use super::*;
use crate::mp4::tests::{ffmpeg, ffprobe, inputs, s, video};

/// What a player sees of a file: every packet's timing, size and flags,
/// each stream's extent, and what decoding yields. (Not the size of the
/// avcC: ffmpeg keeps a zero byte after the PPS that belongs to the next
/// start code.)
fn as_played(file: &Path) -> (String, String, String) {
    let packets = ffprobe(&[
        "-show_entries",
        "packet=stream_index,pts,dts,duration,size,flags",
        "-of",
        "csv",
        s(file),
    ]);
    let streams = ffprobe(&[
        "-show_entries",
        "stream=index,codec_name,profile,width,height,pix_fmt,color_space,color_transfer,\
         color_primaries,color_range,time_base,start_pts,duration_ts,nb_frames,r_frame_rate,\
         avg_frame_rate,sample_rate,channels",
        "-of",
        "csv",
        s(file),
    ]);
    let decoded = ffmpeg(&["-i", s(file), "-f", "framemd5", "-"]);
    (packets, streams, decoded)
}

/// The MP4 this crate writes and the one ffmpeg muxes when that refuses
/// are the same to a player: for 2.7 s (chunks of whole seconds and a part
/// one, the IDR repeated at 2 s) and for 70 s (ffmpeg's M4A then has
/// several chunks of its own).
#[tokio::test]
async fn mp4_writer_and_ffmpeg_mux_agree() {
    for (frames, secs) in [(68, 2.7), (1750, 70.0)] {
        let tmp = tempfile::tempdir().unwrap();
        let (stream, m4a) = inputs(tmp.path(), frames, secs);
        let ours = tmp.path().join("ours.mp4");
        mp4::write(&ours, &video(&stream), &m4a, secs + 0.04).unwrap();

        let raw = tmp.path().join("video.h264");
        std::fs::write(&raw, stream.annex_b()).unwrap();
        let theirs = tmp.path().join("theirs.mp4");
        let out = Output {
            frame: Path::new("unused"),
            video: &theirs,
        };
        let scratch = Scratch {
            video: &raw,
            audio: &m4a,
        };
        let settings = RenderSettings::default();
        mux(&out, &scratch, secs, &settings, &CancellationToken::new())
            .await
            .unwrap();

        let (ours_packets, ours_streams, ours_decoded) = as_played(&ours);
        let (theirs_packets, theirs_streams, theirs_decoded) = as_played(&theirs);
        // The same packets per stream; only the interleaving differs
        // (ffmpeg alternates packet by packet, we second by second).
        let by_stream = |p: &str| {
            let mut lines: Vec<&str> = p.lines().filter(|l| l.starts_with("packet,")).collect();
            lines.sort_by_key(|l| l.split(',').nth(1).unwrap().to_owned());
            lines.join("\n")
        };
        assert_eq!(by_stream(&ours_packets), by_stream(&theirs_packets));
        assert_eq!(ours_streams, theirs_streams);
        assert_eq!(ours_decoded, theirs_decoded);
        let video_frames = ours_decoded.lines().filter(|l| l.starts_with("0,")).count();
        assert_eq!(video_frames as u64, frames);
    }
}
