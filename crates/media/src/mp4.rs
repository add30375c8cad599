//! Writes the still renderer's MP4 from its H.264 frames and the audio
//! ffmpeg transcoded into an M4A, without a third ffmpeg run: starting one
//! costs about as much CPU as this whole file's work, on the render's
//! critical path.
//!
//! The boxes follow what ffmpeg's own `-c copy -movflags +faststart` writes
//! (ISO/IEC 14496-12 and -15): `moov` before `mdat`, an edit list per
//! track, the audio track's boxes copied from the M4A (sample description,
//! timing, priming edit) with only its chunk layout rewritten, and chunks of
//! one second per track interleaved so a browser playing while downloading
//! reads the file front to back. Anything in the M4A that isn't the single
//! plain audio track ffmpeg writes is refused, and the caller lets ffmpeg
//! mux instead.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::h264::StillStream;
use read::Audio;

mod read;
#[cfg(test)]
pub(crate) mod tests;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MuxError {
    #[error("cannot mux this audio: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, MuxError> {
    Err(MuxError::Unsupported(why.into()))
}

pub(crate) struct Video<'a> {
    pub stream: &'a StillStream,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `colr` nclx: primaries, transfer, matrix, full range.
    pub colour: (u16, u16, u16, bool),
}

/// Writes `out` from `video` and the audio track of `m4a`. Refuses audio
/// longer than `max_audio_secs`, which only ffmpeg can cut.
pub(crate) fn write(
    out: &Path,
    video: &Video<'_>,
    m4a: &Path,
    max_audio_secs: f64,
) -> Result<(), MuxError> {
    let mut source = File::open(m4a)?;
    let audio = Audio::read(&mut source)?;
    if audio.secs() > max_audio_secs {
        return unsupported(format!("the audio lasts {}s", audio.secs()));
    }
    let vframes = video.stream.frames;
    if vframes.saturating_mul(u64::from(TICKS_PER_FRAME)) > u64::from(u32::MAX) {
        return unsupported("a video too long for 32-bit durations");
    }
    let sizes: Vec<u32> = (0..vframes)
        .map(|i| {
            video
                .stream
                .frame(i)
                .0
                .iter()
                .map(|n| 4 + n.len() as u32)
                .sum()
        })
        .collect();

    // One chunk per track and second, video first, in time order.
    let fps = u64::from(video.fps.max(1));
    let mut chunks = Vec::new();
    let (mut v, mut a) = (0u64, 0usize);
    let mut second = 1u64;
    while v < vframes || a < audio.samples.len() {
        let v_end = (second * fps).min(vframes);
        if v < v_end {
            chunks.push(Chunk::Video(v..v_end));
            v = v_end;
        }
        let limit = second * u64::from(audio.timescale);
        let a_end = a + audio.times[a..].iter().take_while(|&&t| t < limit).count();
        if a < a_end {
            chunks.push(Chunk::Audio(a..a_end));
            a = a_end;
        }
        second += 1;
    }
    let payload: u64 = chunks
        .iter()
        .map(|c| match c {
            Chunk::Video(r) => r.clone().map(|i| u64::from(sizes[i as usize])).sum::<u64>(),
            Chunk::Audio(r) => audio.samples[r.clone()]
                .iter()
                .map(|s| u64::from(s.1))
                .sum(),
        })
        .sum();

    let ftyp = ftyp();
    let mdat_header = if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    // Offsets don't change the size of moov, only their width does: lay it
    // out once to learn where mdat's data starts, then for real.
    let narrow = moov(video, &audio, &sizes, &chunks, 0, false).len() as u64;
    let wide = ftyp.len() as u64 + narrow + mdat_header + payload > u64::from(u32::MAX);
    let size = match wide {
        true => moov(video, &audio, &sizes, &chunks, 0, true).len() as u64,
        false => narrow,
    };
    let base = ftyp.len() as u64 + size + mdat_header;
    let moov = moov(video, &audio, &sizes, &chunks, base, wide);
    debug_assert_eq!(moov.len() as u64, size);

    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    w.write_all(&ftyp)?;
    w.write_all(&moov)?;
    if mdat_header == 16 {
        w.write_all(&1u32.to_be_bytes())?;
        w.write_all(b"mdat")?;
        w.write_all(&(payload + 16).to_be_bytes())?;
    } else {
        w.write_all(&(payload as u32 + 8).to_be_bytes())?;
        w.write_all(b"mdat")?;
    }
    let mut buf = Vec::new();
    for chunk in &chunks {
        match chunk {
            Chunk::Video(r) => {
                for i in r.clone() {
                    for nal in video.stream.frame(i).0 {
                        w.write_all(&(nal.len() as u32).to_be_bytes())?;
                        w.write_all(nal)?;
                    }
                }
            }
            Chunk::Audio(r) => {
                for run in contiguous(&audio.samples[r.clone()]) {
                    buf.resize(run.1 as usize, 0);
                    source.seek(SeekFrom::Start(run.0))?;
                    source.read_exact(&mut buf)?;
                    w.write_all(&buf)?;
                }
            }
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.flush()?;
    Ok(())
}

enum Chunk {
    Video(std::ops::Range<u64>),
    Audio(std::ops::Range<usize>),
}

/// Merges byte ranges that follow each other in the source file.
fn contiguous(samples: &[(u64, u32)]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &(offset, size) in samples {
        match runs.last_mut() {
            Some(last) if last.0 + last.1 == offset => last.1 += u64::from(size),
            _ => runs.push((offset, u64::from(size))),
        }
    }
    runs
}

const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;
/// Video ticks per frame, as ffmpeg picks (timescale = fps × 512).
const TICKS_PER_FRAME: u32 = 512;
const UNITY_MATRIX: [u32; 9] = [0x1_0000, 0, 0, 0, 0x1_0000, 0, 0, 0, 0x4000_0000];

/// Box writer: `nest` writes a box's size once its contents are known.
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn nest(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Out)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        self.0.extend_from_slice(kind);
        body(self);
        let size = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// A full box: version 0 and `flags`.
    fn full(&mut self, kind: &[u8; 4], flags: u32, body: impl FnOnce(&mut Out)) {
        self.nest(kind, |o| {
            o.u32(flags);
            body(o);
        });
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

fn ftyp() -> Vec<u8> {
    let mut o = Out::default();
    o.nest(b"ftyp", |o| {
        o.bytes(b"isom");
        o.u32(0x200);
        o.bytes(b"isomiso2avc1mp41");
    });
    o.0
}

/// `moov` with chunk offsets counted from `base`, the file offset of
/// mdat's data; `wide` picks 64-bit offsets.
fn moov(
    video: &Video<'_>,
    audio: &Audio,
    sizes: &[u32],
    chunks: &[Chunk],
    base: u64,
    wide: bool,
) -> Vec<u8> {
    let mut video_chunks = Vec::new();
    let mut audio_chunks = Vec::new();
    let mut at = base;
    for chunk in chunks {
        match chunk {
            Chunk::Video(r) => {
                video_chunks.push((at, r.end - r.start));
                at += r.clone().map(|i| u64::from(sizes[i as usize])).sum::<u64>();
            }
            Chunk::Audio(r) => {
                audio_chunks.push((at, (r.end - r.start) as u64));
                at += audio.samples[r.clone()]
                    .iter()
                    .map(|s| u64::from(s.1))
                    .sum::<u64>();
            }
        }
    }
    let movie_ts = u64::from(audio.movie_timescale);
    let fps = u64::from(video.fps.max(1));
    let video_duration = (sizes.len() as u64 * movie_ts).div_ceil(fps) as u32;

    let mut o = Out::default();
    o.nest(b"moov", |o| {
        o.full(b"mvhd", 0, |o| {
            o.u32(0); // creation_time
            o.u32(0); // modification_time
            o.u32(audio.movie_timescale);
            o.u32(u64::from(video_duration).max(audio.duration) as u32);
            o.u32(0x1_0000); // rate 1.0
            o.u16(0x100); // volume 1.0
            o.bytes(&[0; 10]);
            UNITY_MATRIX.iter().for_each(|&m| o.u32(m));
            o.bytes(&[0; 24]);
            o.u32(AUDIO_TRACK + 1); // next_track_ID
        });
        o.nest(b"trak", |o| {
            video_trak(o, video, sizes, &video_chunks, video_duration, wide)
        });
        o.nest(b"trak", |o| audio_trak(o, audio, &audio_chunks, wide));
    });
    o.0
}

fn video_trak(
    o: &mut Out,
    video: &Video<'_>,
    sizes: &[u32],
    chunks: &[(u64, u64)],
    duration: u32,
    wide: bool,
) {
    o.full(b"tkhd", 3, |o| {
        o.u32(0);
        o.u32(0);
        o.u32(VIDEO_TRACK);
        o.u32(0);
        o.u32(duration);
        o.bytes(&[0; 16]); // reserved, layer, alternate_group, volume 0
        UNITY_MATRIX.iter().for_each(|&m| o.u32(m));
        o.u32(video.width << 16);
        o.u32(video.height << 16);
    });
    o.nest(b"edts", |o| {
        o.full(b"elst", 0, |o| {
            o.u32(1);
            o.u32(duration);
            o.u32(0); // media_time
            o.u32(0x1_0000); // media_rate 1.0
        });
    });
    let frames = sizes.len() as u32;
    o.nest(b"mdia", |o| {
        o.full(b"mdhd", 0, |o| {
            o.u32(0);
            o.u32(0);
            o.u32(video.fps.max(1) * TICKS_PER_FRAME);
            o.u32(frames * TICKS_PER_FRAME);
            o.u16(0x55c4); // "und"
            o.u16(0);
        });
        o.full(b"hdlr", 0, |o| {
            o.u32(0);
            o.bytes(b"vide");
            o.bytes(&[0; 12]);
            o.bytes(b"VideoHandler\0");
        });
        o.nest(b"minf", |o| {
            o.full(b"vmhd", 1, |o| o.bytes(&[0; 8]));
            data_information(o);
            o.nest(b"stbl", |o| {
                o.full(b"stsd", 0, |o| {
                    o.u32(1);
                    avc1(o, video);
                });
                o.full(b"stts", 0, |o| {
                    o.u32(1);
                    o.u32(frames);
                    o.u32(TICKS_PER_FRAME);
                });
                let keys: Vec<u32> = (0..u64::from(frames))
                    .filter(|&i| video.stream.frame(i).1)
                    .map(|i| i as u32 + 1)
                    .collect();
                o.full(b"stss", 0, |o| {
                    o.u32(keys.len() as u32);
                    keys.iter().for_each(|&k| o.u32(k));
                });
                chunk_layout(o, chunks, wide);
                o.full(b"stsz", 0, |o| {
                    o.u32(0);
                    o.u32(frames);
                    sizes.iter().for_each(|&s| o.u32(s));
                });
            });
        });
    });
}

fn avc1(o: &mut Out, video: &Video<'_>) {
    let s = video.stream;
    o.nest(b"avc1", |o| {
        o.bytes(&[0; 6]);
        o.u16(1); // data_reference_index
        o.bytes(&[0; 16]);
        o.u16(video.width as u16);
        o.u16(video.height as u16);
        o.u32(0x48_0000); // 72 dpi
        o.u32(0x48_0000);
        o.u32(0);
        o.u16(1); // frame_count
        o.bytes(&[0; 32]); // compressorname
        o.u16(0x18); // depth
        o.u16(0xffff); // pre_defined = -1
        o.nest(b"avcC", |o| {
            o.bytes(&[1, s.sps[1], s.sps[2], s.sps[3]]);
            o.bytes(&[0xff, 0xe1]); // 4-byte lengths; one SPS
            o.u16(s.sps.len() as u16);
            o.bytes(&s.sps);
            o.bytes(&[1]);
            o.u16(s.pps.len() as u16);
            o.bytes(&s.pps);
            if ![66, 77, 88].contains(&s.sps[1]) {
                o.bytes(&[
                    0xfc | s.chroma_format_idc as u8,
                    0xf8 | s.bit_depth_luma_minus8 as u8,
                    0xf8 | s.bit_depth_chroma_minus8 as u8,
                    0, // no SPS extensions
                ]);
            }
        });
        let (primaries, transfer, matrix, full) = video.colour;
        o.nest(b"colr", |o| {
            o.bytes(b"nclx");
            o.u16(primaries);
            o.u16(transfer);
            o.u16(matrix);
            o.bytes(&[u8::from(full) << 7]);
        });
    });
}

fn audio_trak(o: &mut Out, audio: &Audio, chunks: &[(u64, u64)], wide: bool) {
    o.nest(b"tkhd", |o| {
        let mut tkhd = audio.tkhd.clone();
        let at = if tkhd[0] == 1 { 20 } else { 12 };
        tkhd[at..at + 4].copy_from_slice(&AUDIO_TRACK.to_be_bytes());
        o.bytes(&tkhd);
    });
    if let Some(edts) = &audio.edts {
        o.bytes(edts);
    }
    o.nest(b"mdia", |o| {
        audio.mdia_head.iter().for_each(|b| o.bytes(b));
        o.nest(b"minf", |o| {
            audio.minf_head.iter().for_each(|b| o.bytes(b));
            o.nest(b"stbl", |o| {
                audio.stbl_keep.iter().for_each(|b| o.bytes(b));
                chunk_layout(o, chunks, wide);
            });
        });
    });
}

fn data_information(o: &mut Out) {
    o.nest(b"dinf", |o| {
        o.full(b"dref", 0, |o| {
            o.u32(1);
            o.full(b"url ", 1, |_| {}); // media data is in this file
        });
    });
}

/// `stsc` and `stco`/`co64` for chunks of (offset, samples).
fn chunk_layout(o: &mut Out, chunks: &[(u64, u64)], wide: bool) {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for (i, &(_, n)) in chunks.iter().enumerate() {
        if runs.last().is_none_or(|r| u64::from(r.1) != n) {
            runs.push((i as u32 + 1, n as u32));
        }
    }
    o.full(b"stsc", 0, |o| {
        o.u32(runs.len() as u32);
        for (first, per_chunk) in runs {
            o.u32(first);
            o.u32(per_chunk);
            o.u32(1);
        }
    });
    o.full(if wide { b"co64" } else { b"stco" }, 0, |o| {
        o.u32(chunks.len() as u32);
        for &(offset, _) in chunks {
            if wide {
                o.bytes(&offset.to_be_bytes());
            } else {
                o.u32(offset as u32);
            }
        }
    });
}
