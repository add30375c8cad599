//! Extends a one-picture H.264 stream (an IDR frame from libx264) into a
//! still video: every later frame is a P slice whose macroblocks are all
//! skipped, which a decoder turns into an exact copy of the previous frame.
//!
//! Only the few header fields a skip slice depends on are read, and any
//! stream feature this writer does not handle is refused with a reason, so
//! the caller can fall back to a full encode rather than emit something a
//! player might reject. References: ITU-T H.264 (08/2021) 7.3.2.1.1 (SPS),
//! 7.3.2.2 (PPS), 7.3.3 (slice header), 7.3.4 (slice data), 8.2.1 (POC).

use bits::{BitReader, BitWriter};

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const SLICE_TYPE_P_ALL: u32 = 5;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot extend this H.264 stream: {0}")]
pub(crate) struct Unsupported(pub String);

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// What a P skip slice header must agree with.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    nal_ref_idc: u8,
    pps_id: u32,
    log2_max_frame_num: u32,
    poc: Poc,
    mbs: u32,
    bottom_field_pic_order_in_frame_present: bool,
    weighted_pred: bool,
    chroma_array_type: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Poc {
    /// Explicit `pic_order_cnt_lsb`; `idr_lsb` is the IDR's, which P frames
    /// count up from so display order matches decoding order.
    Lsb { log2_max_lsb: u32, idr_lsb: u32 },
    /// Derived from `frame_num`: nothing to write.
    FromFrameNum,
}

/// A still video: its parameter sets and its frames' NAL units (escaped,
/// without start codes), which an MP4 stores length-prefixed and a raw
/// stream after start codes.
pub(crate) struct StillStream {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
    /// What an MP4's `avcC` repeats from the SPS for High profiles.
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub frames: u64,
    gop: u64,
    /// The first frame's NAL units: all of libx264's output, SPS and PPS
    /// included, as ffmpeg keeps them in an MP4's first sample too.
    first: Vec<Vec<u8>>,
    idr: Vec<Vec<u8>>,
    /// `skips[k - 1]` is the kth frame after an IDR.
    skips: Vec<Vec<u8>>,
}

impl StillStream {
    /// Frame `i`'s NAL units, and whether it is a keyframe (IDR).
    pub fn frame(&self, i: u64) -> (&[Vec<u8>], bool) {
        match i % self.gop {
            _ if i == 0 => (&self.first, true),
            0 => (&self.idr, true),
            k => (std::slice::from_ref(&self.skips[k as usize - 1]), false),
        }
    }

    /// As an Annex B elementary stream, the form ffmpeg's raw H.264 reader
    /// takes.
    pub fn annex_b(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..self.frames {
            for nal in self.frame(i).0 {
                push_nal(&mut out, nal);
            }
        }
        out
    }
}

/// A still video of `frames` frames (at least 1) from `idr`, an Annex B
/// stream holding parameter sets and exactly one IDR picture. The IDR is
/// repeated every `gop` frames so players can seek without decoding from
/// the very first frame.
pub(crate) fn still_stream(idr: &[u8], frames: u64, gop: u64) -> Result<StillStream, Unsupported> {
    let nals = split_annex_b(idr);
    let (params, sps, pps) = parse(&nals)?;
    let gop = gop.max(1);
    let kind = |n: &[u8]| n[0] & 0x1f;
    // Two IDRs in a row would need different idr_pic_ids; with P frames
    // between them the very same bytes are valid again.
    let idr_slices = nals.iter().filter(|n| kind(n) == NAL_IDR);
    let skips = (1..gop).map(|k| escape(&skip_slice(&params, k)));
    Ok(StillStream {
        sps: sps.nal.to_vec(),
        pps: pps.to_vec(),
        chroma_format_idc: sps.chroma_array_type,
        bit_depth_luma_minus8: sps.bit_depth_luma_minus8,
        bit_depth_chroma_minus8: sps.bit_depth_chroma_minus8,
        frames: frames.max(1),
        gop,
        first: nals.iter().map(|n| n.to_vec()).collect(),
        idr: idr_slices.map(|n| n.to_vec()).collect(),
        skips: skips.collect(),
    })
}

fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

/// NAL units (header byte first, still escaped) of an Annex B stream.
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        // Trailing zeros belong to the next start code (4-byte form) or
        // are padding, never to the NAL unit.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(&data[s..end]);
        }
    }
    nals
}

/// The skip slices' parameters, the IDR's SPS (parsed and raw) and PPS.
fn parse<'a>(nals: &[&'a [u8]]) -> Result<(Params, Sps<'a>, &'a [u8]), Unsupported> {
    let find = |kind: u8| nals.iter().copied().filter(move |n| n[0] & 0x1f == kind);
    let idr: Vec<&[u8]> = find(NAL_IDR).collect();
    let Some(first) = idr.first() else {
        return unsupported("no IDR slice");
    };
    // Anything but parameter sets, SEI and the IDR's slices (a second
    // picture, an end of stream, delimiters only some AUs would have, …)
    // makes appending frames questionable.
    if let Some(n) = nals
        .iter()
        .find(|n| ![NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS].contains(&(n[0] & 0x1f)))
    {
        return unsupported(format!("NAL unit type {}", n[0] & 0x1f));
    }
    let nal_ref_idc = first[0] >> 5;
    let mut r = BitReader::new(unescape(&first[1..]));
    let first_mb = r.ue()?;
    let _slice_type = r.ue()?;
    let pps_id = r.ue()?;
    if first_mb != 0 {
        return unsupported("the IDR does not start at macroblock 0");
    }
    let (pps, pps_nal) = find(NAL_PPS)
        .map(|n| parse_pps(&unescape(&n[1..])).map(|p| (p, n)))
        .find(|p| p.as_ref().map_or(true, |(p, _)| p.id == pps_id))
        .unwrap_or_else(|| unsupported("no PPS for the IDR"))?;
    let sps = find(NAL_SPS)
        .map(parse_sps)
        .find(|s| s.as_ref().map_or(true, |s| s.id == pps.sps_id))
        .unwrap_or_else(|| unsupported("no SPS for the PPS"))?;
    if pps.entropy_coding_mode {
        return unsupported("CABAC (skip slices are written with CAVLC)");
    }
    if pps.num_slice_groups_minus1 > 0 {
        return unsupported("slice groups");
    }
    if sps.max_num_ref_frames == 0 {
        return unsupported("no reference frames allowed");
    }
    // The rest of the IDR's header, up to its POC: frame_num, idr_pic_id.
    if r.bits(sps.log2_max_frame_num)? != 0 {
        return unsupported("IDR with a non-zero frame_num");
    }
    let _idr_pic_id = r.ue()?;
    let poc = match sps.poc_type {
        0 => {
            let log2_max_lsb = sps.log2_max_poc_lsb;
            let idr_lsb = r.bits(log2_max_lsb)?;
            Poc::Lsb {
                log2_max_lsb,
                idr_lsb,
            }
        }
        2 => Poc::FromFrameNum,
        t => return unsupported(format!("pic_order_cnt_type {t}")),
    };
    let params = Params {
        nal_ref_idc,
        pps_id,
        log2_max_frame_num: sps.log2_max_frame_num,
        poc,
        mbs: sps.mbs,
        bottom_field_pic_order_in_frame_present: pps.bottom_field_pic_order_in_frame_present,
        weighted_pred: pps.weighted_pred,
        chroma_array_type: sps.chroma_array_type,
        deblocking_filter_control_present: pps.deblocking_filter_control_present,
        redundant_pic_cnt_present: pps.redundant_pic_cnt_present,
    };
    Ok((params, sps, pps_nal))
}

struct Sps<'a> {
    nal: &'a [u8],
    id: u32,
    chroma_array_type: u32,
    bit_depth_luma_minus8: u32,
    bit_depth_chroma_minus8: u32,
    log2_max_frame_num: u32,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    max_num_ref_frames: u32,
    mbs: u32,
}

fn parse_sps(nal: &[u8]) -> Result<Sps<'_>, Unsupported> {
    let mut r = BitReader::new(unescape(&nal[1..]));
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    let id = r.ue()?;
    let (mut chroma_array_type, mut bit_depth_luma_minus8, mut bit_depth_chroma_minus8) = (1, 0, 0);
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile_idc) {
        let chroma_format_idc = r.ue()?;
        chroma_array_type = chroma_format_idc;
        if chroma_format_idc == 3 && r.flag()? {
            return unsupported("separate colour planes");
        }
        bit_depth_luma_minus8 = r.ue()?;
        bit_depth_chroma_minus8 = r.ue()?;
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    // Both are `…_minus4` fields; a corrupt one can be as large as ue(v)
    // reads, so add saturating and let the range check below refuse it.
    let log2_max_frame_num = r.ue()?.saturating_add(4);
    let poc_type = r.ue()?;
    let mut log2_max_poc_lsb = 0;
    match poc_type {
        0 => log2_max_poc_lsb = r.ue()?.saturating_add(4),
        2 => {}
        t => return unsupported(format!("pic_order_cnt_type {t}")),
    }
    let max_num_ref_frames = r.ue()?;
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    if !r.flag()? {
        return unsupported("interlaced coding (frame_mbs_only_flag = 0)");
    }
    if log2_max_frame_num > 16 || log2_max_poc_lsb > 16 {
        return unsupported("out-of-range SPS");
    }
    Ok(Sps {
        nal,
        id,
        chroma_array_type,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        log2_max_frame_num,
        poc_type,
        log2_max_poc_lsb,
        max_num_ref_frames,
        mbs: width_mbs
            .checked_mul(height_map_units)
            .ok_or_else(|| Unsupported("absurd picture size".into()))?,
    })
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), Unsupported> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + i64::from(r.se()?) + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

struct Pps {
    id: u32,
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_slice_groups_minus1: u32,
    weighted_pred: bool,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

fn parse_pps(rbsp: &[u8]) -> Result<Pps, Unsupported> {
    let mut r = BitReader::new(rbsp.to_vec());
    let id = r.ue()?;
    let sps_id = r.ue()?;
    let entropy_coding_mode = r.flag()?;
    let bottom_field_pic_order_in_frame_present = r.flag()?;
    let num_slice_groups_minus1 = r.ue()?;
    if num_slice_groups_minus1 > 0 {
        // Their map syntax comes next; not worth parsing for a refusal.
        return unsupported("slice groups");
    }
    r.ue()?; // num_ref_idx_l0_default_active_minus1 (overridden per slice)
    r.ue()?; // num_ref_idx_l1_default_active_minus1
    let weighted_pred = r.flag()?;
    r.bits(2)?; // weighted_bipred_idc
    r.se()?; // pic_init_qp_minus26
    r.se()?; // pic_init_qs_minus26
    r.se()?; // chroma_qp_index_offset
    let deblocking_filter_control_present = r.flag()?;
    r.flag()?; // constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.flag()?;
    Ok(Pps {
        id,
        sps_id,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present,
        num_slice_groups_minus1,
        weighted_pred,
        deblocking_filter_control_present,
        redundant_pic_cnt_present,
    })
}

/// The RBSP of the `k`th frame after an IDR (k ≥ 1): a reference P picture
/// whose every macroblock is P_Skip. Reference (not disposable) pictures
/// keep frame_num rising by one per frame, which POC type 2 needs: two
/// non-reference frames in a row would share a POC there.
fn skip_slice(p: &Params, k: u64) -> Vec<u8> {
    let mut w = BitWriter::default();
    let ref_idc = p.nal_ref_idc.max(1);
    w.bits(u64::from(ref_idc << 5 | NAL_SLICE), 8);
    w.ue(0); // first_mb_in_slice
    w.ue(SLICE_TYPE_P_ALL);
    w.ue(p.pps_id);
    w.bits(k & mask(p.log2_max_frame_num), p.log2_max_frame_num);
    if let Poc::Lsb {
        log2_max_lsb,
        idr_lsb,
    } = p.poc
    {
        let lsb = (u64::from(idr_lsb) + 2 * k) & mask(log2_max_lsb);
        w.bits(lsb, log2_max_lsb);
        if p.bottom_field_pic_order_in_frame_present {
            w.se(0); // delta_pic_order_cnt_bottom
        }
    }
    if p.redundant_pic_cnt_present {
        w.ue(0);
    }
    // One active reference whatever the PPS default, so the skip MBs can
    // only mean "copy the previous frame".
    w.flag(true); // num_ref_idx_active_override_flag
    w.ue(0); // num_ref_idx_l0_active_minus1
    w.flag(false); // ref_pic_list_modification_flag_l0
    if p.weighted_pred {
        w.ue(0); // luma_log2_weight_denom
        if p.chroma_array_type != 0 {
            w.ue(0); // chroma_log2_weight_denom
        }
        w.flag(false); // luma_weight_l0_flag
        if p.chroma_array_type != 0 {
            w.flag(false); // chroma_weight_l0_flag
        }
    }
    w.flag(false); // adaptive_ref_pic_marking_mode_flag: sliding window
    w.se(0); // slice_qp_delta
    if p.deblocking_filter_control_present {
        // Nothing to filter in a copied picture; saying so saves decoders
        // the work of finding that out.
        w.ue(1); // disable_deblocking_filter_idc
    }
    w.ue(p.mbs); // mb_skip_run: the whole picture
    w.flag(true); // rbsp_stop_one_bit
    w.finish()
}

fn mask(bits: u32) -> u64 {
    (1u64 << bits) - 1
}

/// Removes emulation prevention bytes (00 00 03 → 00 00).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Inserts emulation prevention bytes so no start code appears inside.
fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + 4);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

mod bits;
#[cfg(test)]
mod tests;
