//! A zip reader for PyTorch archives that trusts nothing: the end record is searched, every
//! offset and size is checked against the file length with checked arithmetic, and each
//! record's local header is verified. It reads through a [`Source`] (a file read with
//! positioned reads, or a memory map), so a record is read straight into its own buffer.

use crate::error::{Error, Result};
use std::collections::HashMap;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOCATOR_SIG: u32 = 0x0706_4b50;
/// Most entries a central directory may list.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Largest central directory, in bytes.
pub const MAX_CENTRAL_DIRECTORY: u64 = 1 << 28;

/// Random-access bytes: a file or a memory map.
pub trait Source: Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from byte `offset`.
    ///
    /// # Errors
    /// `K0002`/`K0501` when the bytes cannot be read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// `len` bytes from `offset` in a new buffer (the caller has checked the range).
    ///
    /// # Errors
    /// As [`Source::read_at`].
    fn read_new(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_at(offset, &mut v)?;
        Ok(v)
    }

    /// [`Source::read_new`] plus the CRC-32 of the bytes.
    ///
    /// # Errors
    /// As [`Source::read_at`].
    fn read_with_crc(&self, offset: u64, len: usize) -> Result<(Vec<u8>, u32)> {
        let v = self.read_new(offset, len)?;
        let crc = crc32fast::hash(&v);
        Ok((v, crc))
    }

    /// Fills `dst` (uninitialised memory, e.g. a typed tensor buffer's spare capacity) from
    /// byte `offset` and returns the CRC-32 of the bytes (0 without `crc`). On success every
    /// byte of `dst` is written. The default zero-fills `dst` first, then uses
    /// [`Source::read_at`]; files read straight into it.
    ///
    /// # Errors
    /// As [`Source::read_at`].
    fn read_into_uninit(
        &self,
        offset: u64,
        dst: &mut [std::mem::MaybeUninit<u8>],
        crc: bool,
    ) -> Result<u32> {
        for b in dst.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte was initialised just above.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len()) };
        self.read_at(offset, buf)?;
        Ok(if crc { crc32fast::hash(buf) } else { 0 })
    }
}

/// A file read with positioned reads.
pub struct FileSource {
    /// The open file.
    pub file: std::fs::File,
    /// Its length.
    pub len: u64,
    /// Its path, for errors.
    pub path: String,
}

/// Bytes per parallel read (and CRC) task.
#[cfg(unix)]
const READ_CHUNK: usize = 4 << 20;

#[cfg(unix)]
impl FileSource {
    /// Reads `len` bytes at `offset` into a new buffer (see [`FileSource::read_uninit`]).
    fn read_parallel(&self, offset: u64, len: usize, crc: bool) -> Result<(Vec<u8>, u32)> {
        let mut v: Vec<u8> = Vec::with_capacity(len);
        let spare = v.spare_capacity_mut();
        let dst = spare.get_mut(..len).unwrap_or_default();
        let total = self.read_uninit(offset, dst, crc)?;
        // SAFETY: `read_uninit` wrote all of the first `len` bytes (a failure returned above).
        unsafe { v.set_len(len) };
        Ok((v, total))
    }

    /// Fills `dst` from byte `offset`: chunks read in parallel with `pread` straight into the
    /// (uninitialised) memory, backed by huge pages where the kernel allows, each chunk's
    /// CRC-32 computed while it is hot in cache and combined in order (0 without `crc`).
    /// On success every byte of `dst` is written.
    ///
    /// # Errors
    /// `K0002` for a failed read, `K0501` when the file ends early.
    pub fn read_uninit(
        &self,
        offset: u64,
        dst: &mut [std::mem::MaybeUninit<u8>],
        crc: bool,
    ) -> Result<u32> {
        use rayon::prelude::*;
        use std::os::fd::AsRawFd;
        let len = dst.len();
        let fd = self.file.as_raw_fd();
        let huge = 2 << 20;
        let base = dst.as_mut_ptr() as usize;
        let (start, end) = (base.next_multiple_of(huge), (base + len) / huge * huge);
        if end > start {
            // SAFETY: [start, end) lies inside `dst` and is page aligned; MADV_HUGEPAGE is
            // advice only and changes no memory contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
        let read_chunk = |chunk: &mut [std::mem::MaybeUninit<u8>], at: u64| -> Result<u32> {
            let ptr = chunk.as_mut_ptr().cast::<u8>();
            let n_total = chunk.len();
            let mut done = 0usize;
            while done < n_total {
                let off = at
                    .checked_add(done as u64)
                    .and_then(|o| libc::off_t::try_from(o).ok())
                    .ok_or_else(|| truncated(&self.path, format!("offset {at} out of range")))?;
                // SAFETY: `ptr + done .. ptr + n_total` lies inside `chunk`, a part of
                // `dst`; pread writes at most `n_total - done` bytes there.
                let n = unsafe {
                    libc::pread(
                        fd,
                        ptr.add(done).cast::<libc::c_void>(),
                        n_total - done,
                        off,
                    )
                };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(Error::io("reading", &self.path, e));
                }
                if n == 0 {
                    return Err(truncated(
                        &self.path,
                        format!("reading {len} bytes at {offset}: the file ended early"),
                    ));
                }
                done += n as usize;
            }
            if !crc {
                return Ok(0);
            }
            // SAFETY: all `n_total` bytes of the chunk were written by the loop above.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, n_total) };
            Ok(crc32fast::hash(bytes))
        };
        if len <= READ_CHUNK {
            // One chunk: read on this thread (a hand-off to the pool costs more than a small
            // record, and a file of 100k small tensors makes 100k of them).
            return read_chunk(dst, offset);
        }
        let crcs: Vec<(u32, usize)> = dst
            .par_chunks_mut(READ_CHUNK)
            .enumerate()
            .map(|(i, chunk)| {
                let at = offset + (i * READ_CHUNK) as u64;
                let n = chunk.len();
                read_chunk(chunk, at).map(|c| (c, n))
            })
            .collect::<Result<_>>()?;
        let mut total = 0u32;
        if crc {
            let mut h = crc32fast::Hasher::new_with_initial_len(0, 0);
            for (c, n) in crcs {
                h.combine(&crc32fast::Hasher::new_with_initial_len(c, n as u64));
            }
            total = h.finalize();
        }
        Ok(total)
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    #[cfg(unix)]
    fn read_new(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.read_parallel(offset, len, false).map(|(v, _)| v)
    }

    #[cfg(unix)]
    fn read_with_crc(&self, offset: u64, len: usize) -> Result<(Vec<u8>, u32)> {
        self.read_parallel(offset, len, true)
    }
    #[cfg(unix)]
    fn read_into_uninit(
        &self,
        offset: u64,
        dst: &mut [std::mem::MaybeUninit<u8>],
        crc: bool,
    ) -> Result<u32> {
        self.read_uninit(offset, dst, crc)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    truncated(
                        &self.path,
                        format!("reading {} bytes at {offset}", buf.len()),
                    )
                } else {
                    Error::io("reading", &self.path, e)
                }
            })
        }
        #[cfg(not(unix))]
        {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = &self.file;
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_exact(buf))
                .map_err(|e| Error::io("reading", &self.path, e))
        }
    }
}

/// Bytes in memory (a buffer or a memory map).
pub struct SliceSource<'a>(pub &'a [u8]);

impl Source for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).ok();
        let src = start
            .and_then(|s| s.checked_add(buf.len()).map(|e| (s, e)))
            .and_then(|(s, e)| self.0.get(s..e))
            .ok_or_else(|| {
                truncated(
                    "<memory>",
                    format!("reading {} bytes at {offset}", buf.len()),
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn truncated(path: &str, detail: String) -> Error {
    Error::Truncated {
        path: path.to_string(),
        detail,
    }
}

impl Source for memmap2::Mmap {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        SliceSource(self).read_at(offset, buf)
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        SliceSource(self).read_at(offset, buf)
    }
}

/// One record of the archive.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Full name (`archive/data/0`).
    pub name: String,
    /// Offset of the record's data.
    pub data_start: u64,
    /// Stored size.
    pub size: u64,
    /// Uncompressed size.
    pub uncompressed: u64,
    /// CRC32 from the central directory.
    pub crc: u32,
    /// Compression method (0 stored, 8 deflate).
    pub method: u16,
}

/// A parsed archive: its records in central-directory order, each name once.
#[derive(Debug)]
pub struct ZipIndex {
    /// The records.
    pub entries: Vec<Entry>,
    /// Position in `entries` by name (lookups stay O(1): a file of 140k records is read in
    /// linear time).
    by_name: HashMap<String, usize>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }
}

fn read_vec(src: &dyn Source, offset: u64, len: u64, path: &str) -> Result<Vec<u8>> {
    let n = checked_range(src, offset, len, path)?;
    src.read_new(offset, n)
}

/// Checks that `len` bytes at `offset` lie inside the source; the length as `usize`.
fn checked_range(src: &dyn Source, offset: u64, len: u64, path: &str) -> Result<usize> {
    let end = offset.checked_add(len).filter(|e| *e <= src.len());
    if end.is_none() {
        return Err(truncated(
            path,
            format!(
                "{len} bytes at offset {offset} lie past the end of the file ({} bytes)",
                src.len()
            ),
        ));
    }
    usize::try_from(len).map_err(|_| corrupt(path, "record larger than memory"))
}

fn corrupt(path: &str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_string(),
        detail: detail.into(),
    }
}

impl ZipIndex {
    /// Parses the central directory of `src`.
    ///
    /// Hostile archives are refused rather than read one way where PyTorch reads them
    /// another: two records with one name (PyTorch takes the last, a naive reader the first),
    /// a local header naming another file than the directory, records that overlap each
    /// other, and records reaching into the central directory are all `K0502`.
    ///
    /// # Errors
    /// `K0501` when the end of the archive is missing (a truncated file) or a record lies past
    /// the end of the file; `K0502` when the directory or a local header is inconsistent.
    pub fn parse(src: &dyn Source, path: &str) -> Result<ZipIndex> {
        let len = src.len();
        let tail_len = len.min(22 + 65_535);
        let tail = read_vec(src, len - tail_len, tail_len, path)?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| tail.get(i..i + 4) == Some(&EOCD_SIG.to_le_bytes()[..]))
            .ok_or_else(|| {
                truncated(
                    path,
                    format!(
                        "the zip end-of-central-directory record is missing ({len} bytes read); PyTorch: failed finding central directory"
                    ),
                )
            })?;
        let eocd_pos = len - tail_len + eocd as u64;
        let mut c = Cursor {
            b: tail.get(eocd..).unwrap_or(&[]),
            pos: 4,
        };
        let bad_eocd = || corrupt(path, "damaged end-of-central-directory record");
        c.take(4).ok_or_else(bad_eocd)?;
        c.u16().ok_or_else(bad_eocd)?;
        let mut count = u64::from(c.u16().ok_or_else(bad_eocd)?);
        let mut cd_size = u64::from(c.u32().ok_or_else(bad_eocd)?);
        let mut cd_off = u64::from(c.u32().ok_or_else(bad_eocd)?);
        // ZIP64: the locator sits just before the classic record.
        if eocd_pos >= 20 {
            let loc = read_vec(src, eocd_pos - 20, 20, path)?;
            let mut l = Cursor { b: &loc, pos: 0 };
            if l.u32() == Some(LOCATOR_SIG) {
                l.u32();
                let rec_off = l.u64().ok_or_else(bad_eocd)?;
                let rec = read_vec(src, rec_off, 56, path)?;
                let mut r = Cursor { b: &rec, pos: 0 };
                if r.u32() != Some(EOCD64_SIG) {
                    return Err(corrupt(path, "ZIP64 end record signature missing"));
                }
                r.take(20);
                r.u64();
                count = r.u64().ok_or_else(bad_eocd)?;
                cd_size = r.u64().ok_or_else(bad_eocd)?;
                cd_off = r.u64().ok_or_else(bad_eocd)?;
            }
        }
        if count > MAX_ENTRIES as u64 || cd_size > MAX_CENTRAL_DIRECTORY {
            return Err(corrupt(
                path,
                format!(
                    "central directory of {count} entries / {cd_size} bytes exceeds the limits"
                ),
            ));
        }
        if cd_off.checked_add(cd_size).is_none_or(|e| e > len) {
            return Err(truncated(
                path,
                format!(
                    "the central directory (offset {cd_off}, {cd_size} bytes) lies past the end of the file ({len} bytes)"
                ),
            ));
        }
        let cd = read_vec(src, cd_off, cd_size, path)?;
        let mut c = Cursor { b: &cd, pos: 0 };
        let mut entries = Vec::with_capacity(count as usize);
        let mut by_name: HashMap<String, usize> = HashMap::with_capacity(count as usize);
        // (local header offset, data end, entry index) of every record.
        let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(count as usize);
        for i in 0..count {
            let bad = || corrupt(path, format!("central directory entry {i} is damaged"));
            if c.u32() != Some(CENTRAL_SIG) {
                return Err(bad());
            }
            c.take(4).ok_or_else(bad)?;
            let flags = c.u16().ok_or_else(bad)?;
            let method = c.u16().ok_or_else(bad)?;
            c.take(4).ok_or_else(bad)?;
            let crc = c.u32().ok_or_else(bad)?;
            let mut size = u64::from(c.u32().ok_or_else(bad)?);
            let mut uncompressed = u64::from(c.u32().ok_or_else(bad)?);
            let name_len = usize::from(c.u16().ok_or_else(bad)?);
            let extra_len = usize::from(c.u16().ok_or_else(bad)?);
            let comment_len = usize::from(c.u16().ok_or_else(bad)?);
            c.take(8).ok_or_else(bad)?;
            let mut offset = u64::from(c.u32().ok_or_else(bad)?);
            let raw_name = c.take(name_len).ok_or_else(bad)?.to_vec();
            let name = String::from_utf8_lossy(&raw_name).into_owned();
            let extra = c.take(extra_len).ok_or_else(bad)?.to_vec();
            c.take(comment_len).ok_or_else(bad)?;
            if flags & 1 != 0 {
                return Err(Error::Unsupported {
                    what: format!("encrypted zip record '{name}' in '{path}'"),
                });
            }
            // ZIP64 extended information: only the fields that overflowed, in order.
            let mut x = Cursor { b: &extra, pos: 0 };
            while let (Some(id), Some(n)) = (x.u16(), x.u16()) {
                let body = x.take(usize::from(n)).ok_or_else(bad)?;
                if id == 0x0001 {
                    let mut z = Cursor { b: body, pos: 0 };
                    if uncompressed == 0xFFFF_FFFF {
                        uncompressed = z.u64().ok_or_else(bad)?;
                    }
                    if size == 0xFFFF_FFFF {
                        size = z.u64().ok_or_else(bad)?;
                    }
                    if offset == 0xFFFF_FFFF {
                        offset = z.u64().ok_or_else(bad)?;
                    }
                }
            }
            // The local header and its file name, read with one positioned read.
            let want = 30 + name_len as u64;
            checked_range(src, offset, want, path)?;
            let mut lh = vec![0u8; 30 + name_len];
            src.read_at(offset, &mut lh)?;
            let mut l = Cursor { b: &lh, pos: 0 };
            if l.u32() != Some(LOCAL_SIG) {
                return Err(corrupt(
                    path,
                    format!("record '{name}': no local header at offset {offset}"),
                ));
            }
            l.take(22);
            let ln = u64::from(l.u16().ok_or_else(bad)?);
            let le = u64::from(l.u16().ok_or_else(bad)?);
            if ln != name_len as u64 || lh.get(30..) != Some(raw_name.as_slice()) {
                let local = lh.get(30..).unwrap_or_default();
                return Err(corrupt(
                    path,
                    format!(
                        "record '{name}': its local header at offset {offset} names '{}' ({ln} bytes) instead; such an archive reads differently in different zip readers",
                        String::from_utf8_lossy(local)
                    ),
                ));
            }
            let data_start = offset + 30 + ln + le;
            if data_start.checked_add(size).is_none_or(|e| e > len) {
                return Err(truncated(
                    path,
                    format!(
                        "record '{name}' ({size} bytes at offset {data_start}) lies past the end of the file ({len} bytes)"
                    ),
                ));
            }
            if let Some(&first) = by_name.get(&name) {
                return Err(corrupt(
                    path,
                    format!(
                        "record name '{name}' appears twice (central directory entries {first} and {i}); PyTorch would read the last, so kiln refuses the archive"
                    ),
                ));
            }
            by_name.insert(name.clone(), entries.len());
            spans.push((offset, data_start + size, entries.len()));
            entries.push(Entry {
                name,
                data_start,
                size,
                uncompressed,
                crc,
                method,
            });
        }
        check_layout(&mut spans, &entries, cd_off, path)?;
        Ok(ZipIndex { entries, by_name })
    }

    /// The record called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }
}

/// Records must not overlap one another (one byte read as two files) nor reach into the
/// central directory at `cd_off`.
fn check_layout(
    spans: &mut [(u64, u64, usize)],
    entries: &[Entry],
    cd_off: u64,
    path: &str,
) -> Result<()> {
    spans.sort_unstable();
    let name = |i: usize| entries.get(i).map(|e| e.name.as_str()).unwrap_or("?");
    let mut prev: Option<(u64, u64, usize)> = None;
    for &(start, end, i) in spans.iter() {
        if end > cd_off {
            return Err(corrupt(
                path,
                format!(
                    "record '{}' (bytes {start}..{end}) reaches into the central directory at offset {cd_off}: its data lies outside the archive's records",
                    name(i)
                ),
            ));
        }
        if let Some((ps, pe, pi)) = prev
            && start < pe
        {
            return Err(corrupt(
                path,
                format!(
                    "records '{}' (bytes {ps}..{pe}) and '{}' (bytes {start}..{end}) overlap",
                    name(pi),
                    name(i)
                ),
            ));
        }
        prev = Some((start, end, i));
    }
    Ok(())
}

/// Reads a record into memory, checking its CRC32 (`verify`).
///
/// # Errors
/// `K0502` on a CRC mismatch; `K0005` for compressed records; I/O errors.
pub fn read_entry(src: &dyn Source, e: &Entry, verify: bool, path: &str) -> Result<Vec<u8>> {
    if e.method == DEFLATE {
        let v = inflate(&read_vec(src, e.data_start, e.size, path)?, e, path)?;
        if verify {
            check_crc(&v, e, path)?;
        }
        return Ok(v);
    }
    if e.method != 0 {
        return Err(Error::Unsupported {
            what: format!(
                "compressed zip record '{}' (method {}) in '{path}': kiln reads stored and deflated records (torch.save writes them stored); re-save the file",
                e.name, e.method
            ),
        });
    }
    if !verify {
        return read_vec(src, e.data_start, e.size, path);
    }
    let n = checked_range(src, e.data_start, e.size, path)?;
    let (v, crc) = src.read_with_crc(e.data_start, n)?;
    crc_matches(crc, e, path)?;
    Ok(v)
}

/// Reads a stored (uncompressed) record of exactly `dst.len()` bytes into `dst`, checking
/// its CRC-32 with `verify`.
///
/// # Errors
/// `K0005` for a compressed record; `K0507` when its size is not `dst.len()`; `K0501` for
/// a record past the end of the file; `K0502` for a CRC mismatch; read errors.
pub fn read_entry_into(
    src: &dyn Source,
    e: &Entry,
    dst: &mut [std::mem::MaybeUninit<u8>],
    verify: bool,
    path: &str,
) -> Result<()> {
    if e.method != 0 {
        return Err(Error::Unsupported {
            what: format!(
                "reading compressed zip record '{}' (method {}) of '{path}' in place",
                e.name, e.method
            ),
        });
    }
    if e.size != dst.len() as u64 {
        return Err(corrupt(
            path,
            format!(
                "record '{}' holds {} bytes, its storage needs {}",
                e.name,
                e.size,
                dst.len()
            ),
        ));
    }
    checked_range(src, e.data_start, e.size, path)?;
    let crc = src.read_into_uninit(e.data_start, dst, verify)?;
    if verify {
        crc_matches(crc, e, path)?;
    }
    Ok(())
}

/// Zip compression method 8 (what Python's `zipfile.ZIP_DEFLATED` writes).
pub const DEFLATE: u16 = 8;

/// The most a deflate stream expands (1032:1), plus slack: a record announcing more is
/// refused before anything is inflated.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Inflates a deflated record to exactly its announced uncompressed size.
fn inflate(data: &[u8], e: &Entry, path: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let limit = (data.len() as u64)
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1024);
    if e.uncompressed > limit {
        return Err(corrupt(
            path,
            format!(
                "deflated record '{}' announces {} bytes from {} compressed (more than deflate can expand)",
                e.name,
                e.uncompressed,
                data.len()
            ),
        ));
    }
    let want = usize::try_from(e.uncompressed).map_err(|_| {
        corrupt(
            path,
            format!("record '{}' larger than the address space", e.name),
        )
    })?;
    let mut out = Vec::with_capacity(want.min(1 << 26));
    flate2::read::DeflateDecoder::new(data)
        .take(e.uncompressed.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|err| corrupt(path, format!("deflated record '{}': {err}", e.name)))?;
    if out.len() != want {
        return Err(corrupt(
            path,
            format!(
                "deflated record '{}' inflates to {} bytes, the directory says {want}",
                e.name,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Checks a record's bytes against its CRC32 (a stored CRC of 0 means "not recorded", as
/// PyTorch writes with `set_crc32_options(False)`).
///
/// # Errors
/// `K0502` on mismatch.
pub fn check_crc(bytes: &[u8], e: &Entry, path: &str) -> Result<()> {
    if e.crc == 0 {
        return Ok(());
    }
    crc_matches(crc32fast::hash(bytes), e, path)
}

fn crc_matches(got: u32, e: &Entry, path: &str) -> Result<()> {
    if e.crc != 0 && got != e.crc {
        return Err(corrupt(
            path,
            format!(
                "CRC-32 mismatch in record '{}': stored {:08x}, computed {got:08x}",
                e.name, e.crc
            ),
        ));
    }
    Ok(())
}

/// What [`verify_all`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Records whose CRC-32 was checked.
    pub records: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Records stored without a CRC (0, as PyTorch writes with CRCs switched off).
    pub without_crc: usize,
}

/// Bytes per read while streaming a CRC.
const VERIFY_CHUNK: usize = 1 << 20;

/// Checks the CRC-32 of every record, streaming each through one reusable buffer: nothing is
/// materialised, memory stays at [`VERIFY_CHUNK`] whatever the file size.
///
/// # Errors
/// `K0502` naming the first record whose CRC does not match; `K0005` for a compressed
/// record; `K0501`/`K0002` when the bytes cannot be read.
pub fn verify_all(src: &dyn Source, index: &ZipIndex, path: &str) -> Result<Verified> {
    let mut out = Verified::default();
    let mut buf = vec![0u8; VERIFY_CHUNK];
    for e in &index.entries {
        if e.method == DEFLATE {
            let v = read_entry(src, e, true, path)?;
            if e.crc == 0 && !v.is_empty() {
                out.without_crc += 1;
            } else {
                out.records += 1;
                out.bytes += v.len() as u64;
            }
            continue;
        }
        if e.method != 0 {
            return Err(Error::Unsupported {
                what: format!(
                    "compressed zip record '{}' (method {}) in '{path}'",
                    e.name, e.method
                ),
            });
        }
        if e.crc == 0 && e.size > 0 {
            out.without_crc += 1;
            continue;
        }
        checked_range(src, e.data_start, e.size, path)?;
        let mut h = crc32fast::Hasher::new();
        let mut done = 0u64;
        while done < e.size {
            let n = usize::try_from(e.size - done)
                .unwrap_or(VERIFY_CHUNK)
                .min(VERIFY_CHUNK);
            let chunk = buf.get_mut(..n).unwrap_or_default();
            src.read_at(e.data_start + done, chunk)?;
            h.update(chunk);
            done += n as u64;
        }
        let got = h.finalize();
        if got != e.crc {
            return Err(corrupt(
                path,
                format!(
                    "CRC-32 mismatch in record '{}': stored {:08x}, computed {got:08x}",
                    e.name, e.crc
                ),
            ));
        }
        out.records += 1;
        out.bytes += e.size;
    }
    Ok(out)
}
