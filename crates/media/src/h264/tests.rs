use std::process::Command;

use super::*;

#[test]
fn emulation_prevention_round_trips() {
    let rbsp = [0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 4];
    let nal = escape(&rbsp);
    assert_eq!(nal, [0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 3, 0, 0, 4]);
    assert_eq!(unescape(&nal), rbsp);
}

#[test]
fn exp_golomb_round_trips() {
    let mut w = BitWriter::default();
    for v in [0, 1, 2, 3, 7, 8, 255, 8160, 65_535, u32::MAX - 1] {
        w.ue(v);
    }
    for v in [0, 1, -1, 2, -2, 1000, -1000] {
        w.se(v);
    }
    w.flag(true);
    let mut r = BitReader::new(w.finish());
    for v in [0, 1, 2, 3, 7, 8, 255, 8160, 65_535, u32::MAX - 1] {
        assert_eq!(r.ue().unwrap(), v);
    }
    for v in [0, 1, -1, 2, -2, 1000, -1000] {
        assert_eq!(r.se().unwrap(), v);
    }
    assert!(r.flag().unwrap());
}

/// Found by the `h264_parameter_sets` fuzz target
/// (fuzz/corpus/h264_parameter_sets/sps-log2-overflow): a huge
/// `log2_max_frame_num_minus4` or `log2_max_pic_order_cnt_lsb_minus4`
/// overflowed when 4 was added, instead of being refused.
#[test]
fn an_sps_with_huge_log2_fields_is_refused() {
    for (frame_num, poc_lsb) in [(u32::MAX - 1, 0), (0, u32::MAX - 1), (u32::MAX - 3, 0)] {
        let mut w = BitWriter::default();
        w.bits(66, 8); // profile_idc: baseline
        w.bits(0, 16); // constraint flags, level_idc
        w.ue(0); // seq_parameter_set_id
        w.ue(frame_num); // log2_max_frame_num_minus4
        w.ue(0); // pic_order_cnt_type
        w.ue(poc_lsb); // log2_max_pic_order_cnt_lsb_minus4
        w.ue(1); // max_num_ref_frames
        w.flag(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(9); // pic_width_in_mbs_minus1
        w.ue(7); // pic_height_in_map_units_minus1
        w.flag(true); // frame_mbs_only_flag
        w.flag(true); // rbsp_stop_one_bit
        let mut nal = vec![0x67];
        nal.extend(escape(&w.finish()));
        match parse_sps(&nal) {
            Err(Unsupported(why)) => assert!(why.contains("out-of-range"), "{why}"),
            Ok(_) => panic!("an SPS with log2 fields {frame_num}, {poc_lsb} was taken"),
        }
    }
}

#[test]
fn annex_b_splits_on_both_start_code_lengths() {
    let data = [
        0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 0, 4, 0,
    ];
    assert_eq!(
        split_annex_b(&data),
        [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 0, 4]]
    );
}

/// A stream of SPS, PPS and an IDR slice header (no real picture data:
/// only the headers are read) as x264 might write it.
struct Synthetic {
    poc_type: u32,
    cabac: bool,
    weighted_pred: bool,
    idr_lsb: u32,
}

const WIDTH_MBS: u32 = 4;
const HEIGHT_MBS: u32 = 3;

impl Synthetic {
    fn x264_like() -> Self {
        Synthetic {
            poc_type: 2,
            cabac: false,
            weighted_pred: false,
            idr_lsb: 0,
        }
    }

    fn stream(&self) -> Vec<u8> {
        let mut sps = BitWriter::default();
        sps.bits(0x67, 8);
        sps.bits(100, 8); // High
        sps.bits(0, 8);
        sps.bits(40, 8);
        sps.ue(0); // sps id
        sps.ue(1); // 4:2:0
        sps.ue(0);
        sps.ue(0);
        sps.flag(false);
        sps.flag(true); // scaling matrices present: one 4×4 list, flat
        sps.flag(true);
        for _ in 0..16 {
            sps.se(0);
        }
        for _ in 1..8 {
            sps.flag(false);
        }
        sps.ue(5); // log2_max_frame_num = 9
        sps.ue(self.poc_type);
        match self.poc_type {
            0 => sps.ue(2), // log2_max_poc_lsb = 6
            1 => {
                sps.flag(false);
                sps.se(0);
                sps.se(0);
                sps.ue(0);
            }
            _ => {}
        }
        sps.ue(1); // max_num_ref_frames
        sps.flag(false);
        sps.ue(WIDTH_MBS - 1);
        sps.ue(HEIGHT_MBS - 1);
        sps.flag(true); // frame_mbs_only
        sps.flag(true);
        sps.flag(false);
        sps.flag(false);
        sps.flag(true);

        let mut pps = BitWriter::default();
        pps.bits(0x68, 8);
        pps.ue(0);
        pps.ue(0);
        pps.flag(self.cabac);
        pps.flag(true); // bottom_field_pic_order_in_frame_present
        pps.ue(0);
        pps.ue(2); // three refs by default: skip slices must override it
        pps.ue(0);
        pps.flag(self.weighted_pred);
        pps.bits(0, 2);
        pps.se(-3);
        pps.se(0);
        pps.se(0);
        pps.flag(true); // deblocking_filter_control_present
        pps.flag(false);
        pps.flag(false);
        pps.flag(true);

        let mut idr = BitWriter::default();
        idr.bits(0x65, 8);
        idr.ue(0);
        idr.ue(7);
        idr.ue(0);
        idr.bits(0, 9);
        idr.ue(0);
        if self.poc_type == 0 {
            idr.bits(u64::from(self.idr_lsb), 6);
        }
        idr.bits(0xABCD, 16);
        idr.flag(true);

        let mut out = Vec::new();
        for nal in [sps.finish(), pps.finish(), idr.finish()] {
            push_nal(&mut out, &escape(&nal));
        }
        out
    }
}

/// The fields of a skip slice that vary, read back.
#[derive(Debug, PartialEq)]
struct Skip {
    frame_num: u32,
    poc_lsb: Option<u32>,
}

fn read_skip(nal: &[u8], s: &Synthetic) -> Skip {
    assert_eq!(nal[0], 0x61, "reference non-IDR slice");
    let mut r = BitReader::new(unescape(&nal[1..]));
    assert_eq!(r.ue().unwrap(), 0, "first_mb_in_slice");
    assert_eq!(r.ue().unwrap(), 5, "slice_type P");
    assert_eq!(r.ue().unwrap(), 0, "pps id");
    let frame_num = r.bits(9).unwrap();
    let poc_lsb = (s.poc_type == 0).then(|| {
        let lsb = r.bits(6).unwrap();
        assert_eq!(r.se().unwrap(), 0, "delta_pic_order_cnt_bottom");
        lsb
    });
    assert!(r.flag().unwrap(), "num_ref_idx_active_override_flag");
    assert_eq!(r.ue().unwrap(), 0, "one reference");
    assert!(!r.flag().unwrap(), "no list modification");
    if s.weighted_pred {
        assert_eq!(
            (r.ue(), r.ue(), r.flag(), r.flag()),
            (Ok(0), Ok(0), Ok(false), Ok(false))
        );
    }
    assert!(!r.flag().unwrap(), "sliding window marking");
    assert_eq!(r.se().unwrap(), 0, "slice_qp_delta");
    assert_eq!(r.ue().unwrap(), 1, "deblocking off");
    assert_eq!(r.ue().unwrap(), WIDTH_MBS * HEIGHT_MBS, "mb_skip_run");
    assert!(r.flag().unwrap(), "stop bit");
    while !r.pos.is_multiple_of(8) {
        assert!(!r.flag().unwrap(), "alignment");
    }
    assert!(r.bit().is_err(), "trailing data");
    Skip { frame_num, poc_lsb }
}

#[test]
fn skip_slices_count_frames_and_repeat_the_idr() {
    for (poc_type, weighted_pred) in [(2, false), (0, true)] {
        let s = Synthetic {
            poc_type,
            weighted_pred,
            idr_lsb: 60,
            ..Synthetic::x264_like()
        };
        let input = s.stream();
        let out = still_stream(&input, 1030, 600).unwrap().annex_b();
        assert!(out.starts_with(&input));
        let nals = split_annex_b(&out);
        assert_eq!(nals.len(), 2 + 1030);
        let idr = split_annex_b(&input)[2];
        for (i, nal) in nals[2..].iter().enumerate() {
            if i % 600 == 0 {
                assert_eq!(*nal, idr, "frame {i}");
                continue;
            }
            let k = (i % 600) as u32;
            let expected = Skip {
                frame_num: k % 512,
                poc_lsb: (poc_type == 0).then_some((60 + 2 * k) % 64),
            };
            assert_eq!(read_skip(nal, &s), expected, "frame {i}");
        }
    }
}

#[test]
fn one_frame_is_the_idr_alone() {
    let input = Synthetic::x264_like().stream();
    assert_eq!(still_stream(&input, 1, 250).unwrap().annex_b(), input);
    assert_eq!(still_stream(&input, 0, 250).unwrap().annex_b(), input);
}

#[test]
fn unhandled_streams_are_refused() {
    let cabac = Synthetic {
        cabac: true,
        ..Synthetic::x264_like()
    };
    let poc1 = Synthetic {
        poc_type: 1,
        ..Synthetic::x264_like()
    };
    for s in [cabac, poc1] {
        assert!(still_stream(&s.stream(), 10, 250).is_err());
    }
    let input = Synthetic::x264_like().stream();
    let mut no_idr = Vec::new();
    for nal in &split_annex_b(&input)[..2] {
        push_nal(&mut no_idr, nal);
    }
    assert!(still_stream(&no_idr, 10, 250).is_err());
    let truncated_sps = [0, 0, 0, 1, 0x67, 100, 0, 0, 0, 0, 1, 0x68, 0xff];
    assert!(still_stream(&truncated_sps, 10, 250).is_err());
    assert!(still_stream(&[], 10, 250).is_err());
}

/// With the real libx264 and decoder: every decoded frame of the extended
/// stream is the IDR's picture, bit for bit, with no decoder complaints,
/// for the settings genq uses and for ones it doesn't (POC type 0, weighted
/// prediction, several references).
#[test]
fn ffmpeg_decodes_extended_x264_streams_to_identical_frames() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (params, poc_lsb, weighted)) in [
        ("keyint=50:bframes=0:ref=1:weightp=0:cabac=0", false, false),
        ("keyint=50:bframes=2:ref=3:weightp=2:cabac=0", true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let idr = tmp.path().join(format!("idr-{i}.h264"));
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=200x120")
            .args(["-frames:v", "1", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-x264-params", params, "-pix_fmt", "yuv420p", "-f", "h264"])
            .arg(&idr)
            .status()
            .expect("ffmpeg must be installed to run these tests");
        assert!(status.success());
        let idr = std::fs::read(&idr).unwrap();
        let (p, _, _) = parse(&split_annex_b(&idr)).unwrap();
        assert_eq!(matches!(p.poc, Poc::Lsb { .. }), poc_lsb, "{params}");
        assert_eq!(p.weighted_pred, weighted, "{params}");
        let stream = still_stream(&idr, 130, 50).unwrap().annex_b();
        let extended = tmp.path().join(format!("still-{i}.h264"));
        std::fs::write(&extended, stream).unwrap();

        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "h264", "-i"])
            .arg(&extended)
            .args(["-f", "framemd5", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{params}: {stderr}"
        );
        let hashes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
            .collect();
        assert_eq!(hashes.len(), 130, "{params}");
        assert!(hashes.iter().all(|h| *h == hashes[0]), "{params}");
    }
}
