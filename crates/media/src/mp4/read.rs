//! The parts of ffmpeg's M4A that the MP4 needs: the audio track's boxes
//! and where each of its samples lies in the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use super::{unsupported, MuxError};

/// The M4A's audio track: its boxes to copy, and where its samples are.
pub(super) struct Audio {
    pub movie_timescale: u32,
    pub timescale: u32,
    /// `tkhd` payload, `edts` box, then `mdia`'s boxes before `minf`.
    pub tkhd: Vec<u8>,
    pub edts: Option<Vec<u8>>,
    pub mdia_head: Vec<Vec<u8>>,
    /// `minf`'s boxes before `stbl` (smhd, dinf).
    pub minf_head: Vec<Vec<u8>>,
    /// `stbl`'s boxes other than the chunk layout (stsd, stts, stsz, …).
    pub stbl_keep: Vec<Vec<u8>>,
    /// Length in movie time (`tkhd`'s duration, which is the edit's).
    pub duration: u64,
    /// File offset and size of each sample, and its decoding time.
    pub samples: Vec<(u64, u32)>,
    pub times: Vec<u64>,
}

impl Audio {
    pub fn secs(&self) -> f64 {
        self.duration as f64 / f64::from(self.movie_timescale.max(1))
    }

    pub fn read(file: &mut File) -> Result<Self, MuxError> {
        let len = file.metadata()?.len();
        let moov = top_level_moov(file)?;
        let moov = children(&moov)?;
        let mvhd = only(&moov, b"mvhd")?;
        let movie_timescale = field_u32(mvhd, 12, 20)?;
        let traks: Vec<_> = moov.iter().filter(|b| &b.kind == b"trak").collect();
        let [trak] = traks[..] else {
            return unsupported("not exactly one track");
        };
        let trak = children(trak.payload)?;
        let tkhd = only(&trak, b"tkhd")?;
        let duration = if tkhd.first() == Some(&1) {
            field_u64(tkhd, 28)?
        } else {
            u64::from(field_u32(tkhd, 20, 20)?)
        };
        let edts = trak
            .iter()
            .find(|b| &b.kind == b"edts")
            .map(|b| b.whole.to_vec());
        let mdia = children(only(&trak, b"mdia")?)?;
        let hdlr = only(&mdia, b"hdlr")?;
        if hdlr.get(8..12) != Some(b"soun") {
            return unsupported("not an audio track");
        }
        let timescale = field_u32(only(&mdia, b"mdhd")?, 12, 20)?;
        let minf = children(only(&mdia, b"minf")?)?;
        let stbl = children(only(&minf, b"stbl")?)?;
        let stsz = only(&stbl, b"stsz")?;
        let sizes = sample_sizes(stsz, len)?;
        let offsets = match stbl.iter().find(|b| &b.kind == b"co64") {
            Some(co64) => table(co64.payload, 8)?,
            None => table(only(&stbl, b"stco")?, 4)?,
        };
        if movie_timescale == 0 || timescale == 0 || duration > u64::from(u32::MAX) {
            return unsupported("odd timing");
        }
        let samples = place(&sizes, &offsets, only(&stbl, b"stsc")?)?;
        if samples.iter().any(|&(at, size)| at + u64::from(size) > len) {
            return unsupported("a sample outside the file");
        }
        let times = decode_times(only(&stbl, b"stts")?, samples.len())?;
        // The mux lays chunks out second by second up to the last sample.
        let last = times.last().map_or(0, |&t| t / u64::from(timescale));
        if last > duration / u64::from(movie_timescale) + 1 {
            return unsupported("samples past the track's duration");
        }
        let keep = |b: &&Bx| !matches!(&b.kind, b"stsc" | b"stco" | b"co64");
        Ok(Audio {
            movie_timescale,
            timescale,
            tkhd: tkhd.to_vec(),
            edts,
            mdia_head: wholes(mdia.iter().filter(|b| &b.kind != b"minf")),
            minf_head: wholes(minf.iter().filter(|b| &b.kind != b"stbl")),
            stbl_keep: wholes(stbl.iter().filter(keep)),
            duration,
            samples,
            times,
        })
    }
}

fn wholes<'a>(boxes: impl Iterator<Item = &'a Bx<'a>>) -> Vec<Vec<u8>> {
    boxes.map(|b| b.whole.to_vec()).collect()
}

/// Reads the top-level `moov` (at the end of ffmpeg's non-faststart M4A).
fn top_level_moov(file: &mut File) -> Result<Vec<u8>, MuxError> {
    let len = file.metadata()?.len();
    let mut pos = 0;
    while pos + 8 <= len {
        file.seek(SeekFrom::Start(pos))?;
        let mut head = [0u8; 16];
        file.read_exact(&mut head[..8])?;
        let mut size = u64::from(u32::from_be_bytes(head[..4].try_into().unwrap()));
        let mut header = 8;
        if size == 1 {
            file.read_exact(&mut head[8..])?;
            size = u64::from_be_bytes(head[8..].try_into().unwrap());
            header = 16;
        } else if size == 0 {
            size = len - pos;
        }
        if size < header || size > len - pos {
            return unsupported("a truncated box");
        }
        if &head[4..8] == b"moov" {
            if size > 256 << 20 {
                return unsupported("an oversized moov");
            }
            let mut moov = vec![0; (size - header) as usize];
            file.read_exact(&mut moov)?;
            return Ok(moov);
        }
        pos += size;
    }
    unsupported("no moov")
}

struct Bx<'a> {
    kind: [u8; 4],
    payload: &'a [u8],
    whole: &'a [u8],
}

fn children(data: &[u8]) -> Result<Vec<Bx<'_>>, MuxError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let head = data
            .get(pos..pos + 8)
            .ok_or(MuxError::Unsupported("a box".into()))?;
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        // Inside moov ffmpeg never needs 64-bit or open-ended sizes.
        if size < 8 || pos + size > data.len() {
            return unsupported("an odd box size");
        }
        out.push(Bx {
            kind: head[4..8].try_into().unwrap(),
            payload: &data[pos + 8..pos + size],
            whole: &data[pos..pos + size],
        });
        pos += size;
    }
    Ok(out)
}

fn only<'a>(boxes: &[Bx<'a>], kind: &[u8; 4]) -> Result<&'a [u8], MuxError> {
    match boxes.iter().filter(|b| &b.kind == kind).collect::<Vec<_>>()[..] {
        [b] => Ok(b.payload),
        _ => unsupported(format!("not one {}", String::from_utf8_lossy(kind))),
    }
}

/// A u32 at `v0` in a version 0 full box, or at `v1` in version 1.
fn field_u32(payload: &[u8], v0: usize, v1: usize) -> Result<u32, MuxError> {
    let at = if payload.first() == Some(&1) { v1 } else { v0 };
    let bytes = payload
        .get(at..at + 4)
        .ok_or(MuxError::Unsupported("short box".into()))?;
    Ok(u32::from_be_bytes(bytes.try_into().unwrap()))
}

fn field_u64(payload: &[u8], at: usize) -> Result<u64, MuxError> {
    let bytes = payload
        .get(at..at + 8)
        .ok_or(MuxError::Unsupported("short box".into()))?;
    Ok(u64::from_be_bytes(bytes.try_into().unwrap()))
}

/// A full box's entry count and `width`-byte entries, as u64s.
fn table(payload: &[u8], width: usize) -> Result<Vec<u64>, MuxError> {
    let count = field_u32(payload, 4, 4)? as usize;
    let body = payload
        .get(8..8 + count * width)
        .ok_or(MuxError::Unsupported("table".into()))?;
    Ok(body
        .chunks(width)
        .map(|c| c.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)))
        .collect())
}

/// Each sample's size; `len`, the file's, bounds what they add up to.
pub(super) fn sample_sizes(stsz: &[u8], len: u64) -> Result<Vec<u32>, MuxError> {
    let fixed = field_u32(stsz, 4, 4)?;
    let count = field_u32(stsz, 8, 8)? as usize;
    if fixed != 0 {
        // A dozen bytes must not make a vector of billions.
        if u64::from(fixed) * count as u64 > len {
            return unsupported("more sample data than the file holds");
        }
        return Ok(vec![fixed; count]);
    }
    let t = table(&stsz[4..], 4)?;
    Ok(t.into_iter().map(|v| v as u32).collect())
}

/// Each sample's file offset, from chunk offsets and `stsc`'s runs.
pub(super) fn place(
    sizes: &[u32],
    offsets: &[u64],
    stsc: &[u8],
) -> Result<Vec<(u64, u32)>, MuxError> {
    let count = field_u32(stsc, 4, 4)? as usize;
    let body = stsc
        .get(8..8 + count * 12)
        .ok_or(MuxError::Unsupported("stsc".into()))?;
    let entries: Vec<(u64, u64, u32)> = body
        .chunks(12)
        .map(|e| {
            let f = |i: usize| u32::from_be_bytes(e[i..i + 4].try_into().unwrap());
            (u64::from(f(0)), u64::from(f(4)), f(8))
        })
        .collect();
    let mut out = Vec::with_capacity(sizes.len());
    let mut sample = 0;
    for (i, &(first, per_chunk, description)) in entries.iter().enumerate() {
        let last = entries.get(i + 1).map_or(offsets.len() as u64 + 1, |e| e.0);
        if description != 1 || first == 0 || last < first {
            return unsupported("an odd stsc");
        }
        for chunk in first..last {
            let mut at = *offsets
                .get(chunk as usize - 1)
                .ok_or(MuxError::Unsupported("stsc past stco".into()))?;
            for _ in 0..per_chunk {
                let size = *sizes
                    .get(sample)
                    .ok_or(MuxError::Unsupported("stsz".into()))?;
                out.push((at, size));
                at = at
                    .checked_add(u64::from(size))
                    .ok_or(MuxError::Unsupported("a sample past 2^64".into()))?;
                sample += 1;
            }
        }
    }
    if sample != sizes.len() {
        return unsupported("stsc and stsz disagree");
    }
    Ok(out)
}

pub(super) fn decode_times(stts: &[u8], samples: usize) -> Result<Vec<u64>, MuxError> {
    let mut times = Vec::with_capacity(samples);
    let mut t = 0u64;
    for e in table(stts, 8)? {
        let (count, delta) = (e >> 32, e & 0xffff_ffff);
        // Refused before the loop: one entry can claim 2^32 samples.
        if count > (samples - times.len()) as u64 {
            return unsupported("stts and stsz disagree");
        }
        for _ in 0..count {
            times.push(t);
            t += delta;
        }
    }
    if times.len() != samples {
        return unsupported("stts and stsz disagree");
    }
    Ok(times)
}
