//! A small zip writer for PyTorch archives: STORED records whose data start on a 64-byte
//! boundary (padding in a local-header extra field `FB`, as PyTorch's writer does), CRC32,
//! ZIP64 records when sizes or offsets need them, and ZIP64 end records always (like
//! PyTorch). Timestamps are zero, so output is deterministic.

use crate::error::{Error, Result};
use std::io::Write;

/// Alignment of record data, as `torch.save` uses (needed by `torch.load(mmap=True)`).
pub const ALIGNMENT: u64 = 64;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOCATOR_SIG: u32 = 0x0706_4b50;
const U32_MAX: u64 = 0xFFFF_FFFF;
/// Language encoding flag: names are UTF-8.
const FLAGS: u16 = 0x0800;

/// Bytes per parallel CRC task.
const CRC_CHUNK: usize = 4 << 20;

/// The CRC-32 of `data` as a hasher, computed on all cores for large data.
fn parallel_crc(data: &[u8]) -> crc32fast::Hasher {
    use rayon::prelude::*;
    if data.len() < 2 * CRC_CHUNK {
        let mut h = crc32fast::Hasher::new();
        h.update(data);
        return h;
    }
    let parts: Vec<(u32, u64)> = data
        .par_chunks(CRC_CHUNK)
        .map(|c| (crc32fast::hash(c), c.len() as u64))
        .collect();
    let mut h = crc32fast::Hasher::new();
    for (c, n) in parts {
        h.combine(&crc32fast::Hasher::new_with_initial_len(c, n));
    }
    h
}

struct Central {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Writes records one after another, then the central directory on [`ZipWriter::finish`].
pub struct ZipWriter<'a> {
    w: &'a mut dyn Write,
    pos: u64,
    entries: Vec<Central>,
    path: String,
}

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn clamp32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

impl<'a> ZipWriter<'a> {
    /// A writer on `w` (positioned at the start of the file); `path` names the file in errors.
    pub fn new(w: &'a mut dyn Write, path: &str) -> Self {
        ZipWriter {
            w,
            pos: 0,
            entries: Vec::new(),
            path: path.to_string(),
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io("writing", &self.path, e)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).map_err(|e| self.io(e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Adds a STORED record made of `parts` concatenated, its data aligned to 64 bytes.
    ///
    /// # Errors
    /// `K0002` when writing fails; `K0003` for a name longer than 65535 bytes.
    pub fn add(&mut self, name: &str, parts: &[&[u8]]) -> Result<()> {
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let mut hasher = crc32fast::Hasher::new();
        for p in parts {
            hasher.combine(&parallel_crc(p));
        }
        let crc = hasher.finalize();
        let name_len = u16::try_from(name.len())
            .map_err(|_| Error::invalid("zip record name", name, "at most 65535 bytes"))?;
        let zip64 = size >= U32_MAX;
        let mut extra = Vec::new();
        if zip64 {
            u16le(&mut extra, 0x0001);
            u16le(&mut extra, 16);
            u64le(&mut extra, size);
            u64le(&mut extra, size);
        }
        let start = self.pos + 30 + u64::from(name_len) + extra.len() as u64;
        let pad = (ALIGNMENT - (start + 4) % ALIGNMENT) % ALIGNMENT;
        extra.extend_from_slice(b"FB");
        u16le(&mut extra, pad as u16);
        extra.resize(extra.len() + pad as usize, b'Z');
        let mut h = Vec::with_capacity(30 + name.len() + extra.len());
        u32le(&mut h, LOCAL_SIG);
        u16le(&mut h, if zip64 { 45 } else { 20 });
        u16le(&mut h, FLAGS);
        u16le(&mut h, 0); // STORED
        u16le(&mut h, 0); // time
        u16le(&mut h, 0); // date
        u32le(&mut h, crc);
        let s32 = if zip64 { u32::MAX } else { clamp32(size) };
        u32le(&mut h, s32);
        u32le(&mut h, s32);
        u16le(&mut h, name_len);
        u16le(&mut h, extra.len() as u16);
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&extra);
        let offset = self.pos;
        self.put(&h)?;
        debug_assert_eq!(self.pos % ALIGNMENT, 0);
        for p in parts {
            self.put(p)?;
        }
        self.entries.push(Central {
            name: name.to_string(),
            crc,
            size,
            offset,
        });
        Ok(())
    }

    /// A digest of the records written so far (names and CRCs): two 64-bit FNV-1a hashes.
    pub fn digest(&self) -> (u64, u64) {
        let mut a: u64 = 0xcbf2_9ce4_8422_2325;
        let mut b: u64 = 0x8422_2325_cbf2_9ce4;
        for e in &self.entries {
            for byte in e
                .name
                .bytes()
                .chain(e.crc.to_le_bytes())
                .chain(e.size.to_le_bytes())
            {
                a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
                b = (b ^ u64::from(byte))
                    .wrapping_mul(0x0000_0100_0000_01b3)
                    .rotate_left(7);
            }
        }
        (a, b)
    }

    /// Writes the central directory and the end records.
    ///
    /// # Errors
    /// `K0002` when writing fails.
    pub fn finish(mut self) -> Result<()> {
        let cd_start = self.pos;
        let mut cd = Vec::new();
        for e in &self.entries {
            let mut extra = Vec::new();
            let big_size = e.size >= U32_MAX;
            let big_off = e.offset >= U32_MAX;
            if big_size || big_off {
                u16le(&mut extra, 0x0001);
                u16le(
                    &mut extra,
                    if big_size { 16 } else { 0 } + if big_off { 8 } else { 0 },
                );
                if big_size {
                    u64le(&mut extra, e.size);
                    u64le(&mut extra, e.size);
                }
                if big_off {
                    u64le(&mut extra, e.offset);
                }
            }
            u32le(&mut cd, CENTRAL_SIG);
            u16le(&mut cd, 45); // made by: spec 4.5
            u16le(&mut cd, if big_size || big_off { 45 } else { 20 });
            u16le(&mut cd, FLAGS);
            u16le(&mut cd, 0);
            u16le(&mut cd, 0);
            u16le(&mut cd, 0);
            u32le(&mut cd, e.crc);
            let s = if big_size { u32::MAX } else { clamp32(e.size) };
            u32le(&mut cd, s);
            u32le(&mut cd, s);
            u16le(&mut cd, e.name.len() as u16);
            u16le(&mut cd, extra.len() as u16);
            u16le(&mut cd, 0); // comment
            u16le(&mut cd, 0); // disk
            u16le(&mut cd, 0); // internal attributes
            u32le(&mut cd, 0); // external attributes
            u32le(&mut cd, if big_off { u32::MAX } else { clamp32(e.offset) });
            cd.extend_from_slice(e.name.as_bytes());
            cd.extend_from_slice(&extra);
        }
        let n = self.entries.len() as u64;
        let cd_size = cd.len() as u64;
        let eocd64 = cd_start + cd_size;
        // ZIP64 end of central directory record + locator.
        u32le(&mut cd, EOCD64_SIG);
        u64le(&mut cd, 44);
        u16le(&mut cd, 45);
        u16le(&mut cd, 45);
        u32le(&mut cd, 0);
        u32le(&mut cd, 0);
        u64le(&mut cd, n);
        u64le(&mut cd, n);
        u64le(&mut cd, cd_size);
        u64le(&mut cd, cd_start);
        u32le(&mut cd, LOCATOR_SIG);
        u32le(&mut cd, 0);
        u64le(&mut cd, eocd64);
        u32le(&mut cd, 1);
        // Classic end record (0xFFFF… where ZIP64 holds the value).
        u32le(&mut cd, EOCD_SIG);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        let n16 = u16::try_from(n).unwrap_or(u16::MAX);
        u16le(&mut cd, n16);
        u16le(&mut cd, n16);
        u32le(&mut cd, clamp32(cd_size));
        u32le(&mut cd, clamp32(cd_start));
        u16le(&mut cd, 0);
        self.put(&cd)?;
        self.w.flush().map_err(|e| self.io(e))
    }
}
