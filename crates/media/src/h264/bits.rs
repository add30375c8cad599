//! Bit-level reading and writing of H.264 syntax elements (fixed-width,
//! Exp-Golomb `ue(v)` and `se(v)`), on unescaped RBSP bytes.

use super::{unsupported, Unsupported};

pub(super) struct BitReader {
    data: Vec<u8>,
    pub(super) pos: usize,
}

impl BitReader {
    pub(super) fn new(data: Vec<u8>) -> Self {
        BitReader { data, pos: 0 }
    }

    pub(super) fn bit(&mut self) -> Result<u32, Unsupported> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| Unsupported("truncated header".into()))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    pub(super) fn flag(&mut self) -> Result<bool, Unsupported> {
        Ok(self.bit()? == 1)
    }

    pub(super) fn bits(&mut self, n: u32) -> Result<u32, Unsupported> {
        (0..n).try_fold(0, |v, _| Ok(v << 1 | self.bit()?))
    }

    pub(super) fn ue(&mut self) -> Result<u32, Unsupported> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return unsupported("corrupt exp-Golomb code");
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + rest).or_else(|_| unsupported("value out of range"))
    }

    pub(super) fn se(&mut self) -> Result<i32, Unsupported> {
        let k = i64::from(self.ue()?);
        Ok((if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) }) as i32)
    }
}

#[derive(Default)]
pub(super) struct BitWriter {
    out: Vec<u8>,
    acc: u8,
    used: u32,
}

impl BitWriter {
    pub(super) fn flag(&mut self, b: bool) {
        self.acc = self.acc << 1 | u8::from(b);
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.acc);
            (self.acc, self.used) = (0, 0);
        }
    }

    pub(super) fn bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.flag(v >> i & 1 == 1);
        }
    }

    pub(super) fn ue(&mut self, v: u32) {
        let v = u64::from(v) + 1;
        let len = 64 - v.leading_zeros();
        self.bits(0, len - 1);
        self.bits(v, len);
    }

    pub(super) fn se(&mut self, v: i32) {
        let v = i64::from(v);
        self.ue(if v > 0 { 2 * v - 1 } else { -2 * v } as u32);
    }

    /// Pads with zero bits to a byte boundary (rbsp_alignment_zero_bit).
    pub(super) fn finish(mut self) -> Vec<u8> {
        while self.used != 0 {
            self.flag(false);
        }
        self.out
    }
}
