//! A POSIX tar reader, the subset Python's `tarfile` writes (ustar, GNU and PAX formats), for
//! PyTorch's pre-0.4 checkpoints ([`super::torch_tar`]). Members are byte ranges into the
//! archive: nothing is copied, so a read never holds more than the file.
//!
//! Every header's checksum is verified (the unsigned sum, or the signed one old tars
//! wrote); sizes are octal or GNU base-256; a ustar `prefix` is joined to the name; PAX
//! extended headers (`x`, and global `g`) may set `path` and `size`; GNU long names (`L`)
//! set the next member's name. The archive ends at the first all-zero block or at the end
//! of the file on a block boundary, as `tarfile` reads it.

use crate::error::{Error, Result};

/// Size of a tar block.
pub const BLOCK: usize = 512;
/// Most members an archive may hold (a PyTorch checkpoint has four).
pub const MAX_MEMBERS: usize = 1 << 16;
/// Longest PAX header or GNU long name, in bytes.
pub const MAX_META: usize = 1 << 20;

/// The type of a member (the header's typeflag).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (`0`, NUL or `7`).
    File,
    /// A directory (`5`).
    Dir,
    /// A hard (`1`) or symbolic (`2`) link.
    Link,
    /// Anything else (devices, FIFOs, vendor types), skipped by readers.
    Other(u8),
}

/// One member of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its path in the archive (PAX `path` or GNU long name when given).
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Offset of its header block.
    pub header: usize,
    /// Offset of its data.
    pub start: usize,
    /// Length of its data in bytes.
    pub len: usize,
}

impl Member {
    /// Its data within `archive` (the bytes [`members`] read it from).
    pub fn data<'a>(&self, archive: &'a [u8]) -> &'a [u8] {
        archive
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

/// Whether `head` (the first bytes of a file, at least one block for the checksum test)
/// starts like a tar archive: `ustar` magic at offset 257, or a first header whose checksum
/// is right.
pub fn looks_like(head: &[u8]) -> bool {
    if head.get(257..262) == Some(b"ustar") {
        return true;
    }
    match head.get(..BLOCK) {
        Some(h) if h.iter().any(|&b| b != 0) => checksum_ok(h),
        _ => false,
    }
}

fn checksum_ok(h: &[u8]) -> bool {
    let Some(field) = h.get(148..156) else {
        return false;
    };
    let Ok(want) = octal(field) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed)
}

/// An octal field: optional leading spaces, digits, then NUL or space padding.
fn octal(field: &[u8]) -> std::result::Result<u64, String> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for &b in &s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "{:?} is not an octal number",
                String::from_utf8_lossy(field)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or("an octal number overflows")?;
    }
    Ok(v)
}

/// A numeric field: octal, or GNU base-256 (first byte 0x80 positive, 0xff negative).
fn number(field: &[u8]) -> std::result::Result<u64, String> {
    match field.first() {
        Some(0x80) => {
            let mut v: u64 = 0;
            for &b in field.get(1..).unwrap_or(&[]) {
                if v > u64::MAX >> 8 {
                    return Err("a base-256 number overflows".into());
                }
                v = (v << 8) | u64::from(b);
            }
            Ok(v)
        }
        Some(0xff) => Err("a negative base-256 number".into()),
        _ => octal(field),
    }
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or(&[])).into_owned()
}

/// Next block boundary at or after `n`.
fn padded(n: usize) -> Option<usize> {
    n.checked_add(BLOCK - 1).map(|x| x / BLOCK * BLOCK)
}

/// What a PAX header sets: `(path, size)`.
fn pax(data: &[u8], at: usize, path: &str) -> Result<(Option<String>, Option<u64>)> {
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_string(),
        detail: format!("PAX header at byte {at}: {detail}"),
    };
    let (mut name, mut size) = (None, None);
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| corrupt("a record without a length".into()))?;
        let len: usize = std::str::from_utf8(rest.get(..sp).unwrap_or(&[]))
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > sp + 1 && l <= rest.len())
            .ok_or_else(|| corrupt("a record length is not a number within the header".into()))?;
        let record = rest.get(sp + 1..len).unwrap_or(&[]);
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| corrupt("a record without '='".into()))?;
        let (k, v) = (
            record.get(..eq).unwrap_or(&[]),
            record.get(eq + 1..).unwrap_or(&[]),
        );
        match k {
            b"path" => name = Some(String::from_utf8_lossy(v).into_owned()),
            b"size" => {
                let s = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| corrupt(format!("size {:?}", String::from_utf8_lossy(v))))?;
                size = Some(s);
            }
            _ => {}
        }
        rest = rest.get(len..).unwrap_or(&[]);
    }
    Ok((name, size))
}

/// The members of the archive `data`, in order (PAX and GNU long-name headers are applied,
/// not listed).
///
/// # Errors
/// `K0501` when a header or a member's data runs past the end of the file; `K0502` for a bad
/// checksum, a malformed number or PAX record, or more than [`MAX_MEMBERS`] members;
/// `K0503` when the first block is not a tar header.
pub fn members(data: &[u8], path: &str) -> Result<Vec<Member>> {
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_string(),
        detail,
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    let (mut next_name, mut next_size): (Option<String>, Option<u64>) = (None, None);
    let (mut global_name, mut global_size): (Option<String>, Option<u64>) = (None, None);
    loop {
        if pos >= data.len() {
            if next_name.is_some() || next_size.is_some() {
                return Err(Error::Truncated {
                    path: path.to_string(),
                    detail: format!(
                        "the tar archive ends at byte {pos} after an extended header, before its member"
                    ),
                });
            }
            break;
        }
        let h = data.get(pos..pos + BLOCK).ok_or_else(|| Error::Truncated {
            path: path.to_string(),
            detail: format!(
                "the tar archive ends at byte {} inside the header at byte {pos}",
                data.len()
            ),
        })?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(h) {
            if pos == 0 {
                return Err(Error::NotAModelFile {
                    path: path.to_string(),
                    detail: "the first block is not a tar header".into(),
                });
            }
            return Err(corrupt(format!(
                "the tar header at byte {pos} has a bad checksum (a damaged or cut archive)"
            )));
        }
        if out.len() >= MAX_MEMBERS {
            return Err(corrupt(format!(
                "the tar archive has more than {MAX_MEMBERS} members"
            )));
        }
        let field = |a: usize, b: usize| h.get(a..b).unwrap_or(&[]);
        let flag = h.get(156).copied().unwrap_or(0);
        let is_meta = matches!(flag, b'x' | b'g' | b'L' | b'K');
        let size = match next_size.or(global_size).filter(|_| !is_meta) {
            Some(s) => s,
            None => number(field(124, 136))
                .map_err(|e| corrupt(format!("the size of the tar member at byte {pos}: {e}")))?,
        };
        if !is_meta {
            next_size = None;
        }
        let start = pos + BLOCK;
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| start.checked_add(l).is_some_and(|e| e <= data.len()))
            .ok_or_else(|| Error::Truncated {
                path: path.to_string(),
                detail: format!(
                    "the tar member '{}' at byte {pos} announces {size} bytes but the file ends at byte {}",
                    next_name.clone().unwrap_or_else(|| text(field(0, 100))),
                    data.len()
                ),
            })?;
        let body = data.get(start..start + len).unwrap_or(&[]);
        let meta = |what: &str| -> Result<()> {
            if len > MAX_META {
                return Err(corrupt(format!(
                    "the {what} at byte {pos} is {len} bytes, more than the {MAX_META} allowed"
                )));
            }
            Ok(())
        };
        match flag {
            b'x' => {
                meta("PAX header")?;
                let (n, s) = pax(body, pos, path)?;
                next_name = n.or(next_name);
                next_size = s.or(next_size);
            }
            b'g' => {
                meta("PAX global header")?;
                let (n, s) = pax(body, pos, path)?;
                global_name = n.or(global_name);
                global_size = s.or(global_size);
            }
            b'L' => {
                meta("GNU long name")?;
                next_name = Some(text(body));
            }
            b'K' => meta("GNU long link name")?,
            _ => {
                let name = match next_name.take().or_else(|| global_name.clone()) {
                    Some(n) => n,
                    None => {
                        let name = text(field(0, 100));
                        let prefix = text(field(345, 500));
                        if field(257, 263) == b"ustar\0" && !prefix.is_empty() {
                            format!("{prefix}/{name}")
                        } else {
                            name
                        }
                    }
                };
                let kind = match flag {
                    0 | b'0' | b'7' => Kind::File,
                    b'5' => Kind::Dir,
                    b'1' | b'2' => Kind::Link,
                    f => Kind::Other(f),
                };
                // Links and directories have no data even if a size is given.
                let len = if matches!(kind, Kind::File | Kind::Other(_)) {
                    len
                } else {
                    0
                };
                out.push(Member {
                    name,
                    kind,
                    header: pos,
                    start,
                    len,
                });
                pos = padded(start + len).unwrap_or(usize::MAX);
                continue;
            }
        }
        pos = padded(start + len).unwrap_or(usize::MAX);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "tar_tests.rs"]
pub(crate) mod tests;
