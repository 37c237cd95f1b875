//! MNIST / Fashion-MNIST IDX files (`train-images-idx3-ubyte`, `…-labels-idx1-ubyte`, raw or
//! `.gz`). The header's dimensions are checked against the file's length before anything
//! is allocated; for gzip files against the most a deflate stream can expand (1032:1), and
//! the decompressed length must then match exactly.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most a deflate stream expands (zlib's documented bound is about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;

fn fmt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::DataFormat {
        path: path.display().to_string(),
        format: "IDX".into(),
        detail: detail.into(),
    }
}

/// An IDX array of `u8`: its dimensions and values.
#[derive(Debug)]
pub struct Idx {
    /// Dimensions from the header.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// The file `dir/stem` in one of its spellings: `stem`, `stem.gz`, and with `.` for the last
/// `-` (`train-images.idx3-ubyte`, as some mirrors name them).
pub fn find_idx(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem
        .rfind("-idx")
        .map(|p| format!("{}.{}", &stem[..p], &stem[p + 1..]));
    let mut names = vec![stem.to_string(), format!("{stem}.gz")];
    if let Some(d) = dotted {
        names.push(format!("{d}.gz"));
        names.push(d);
    }
    names.into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Reads an IDX file of `expected_rank` dimensions (`u8` values only, as MNIST's).
///
/// # Errors
/// `K0002` unreadable; `K0107` bad magic, another value type or rank, or dimensions that
/// disagree with the file's length.
pub fn read_idx(path: &Path, expected_rank: usize) -> Result<Idx> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let file_len = f
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let mut r: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    let read_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            fmt_err(path, "the file ends inside the header")
        } else if gz {
            fmt_err(path, format!("gzip stream: {e}"))
        } else {
            Error::io("reading", path, e)
        }
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(read_err)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(fmt_err(
            path,
            format!("bad magic number {magic:02x?} (an IDX file starts with 00 00 <type> <rank>)"),
        ));
    }
    if magic[2] != 0x08 {
        return Err(fmt_err(
            path,
            format!(
                "value type 0x{:02x}; kiln reads unsigned-byte (0x08) IDX files",
                magic[2]
            ),
        ));
    }
    let rank = magic[3] as usize;
    if rank != expected_rank {
        return Err(fmt_err(
            path,
            format!("{rank} dimensions where {expected_rank} were expected"),
        ));
    }
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(read_err)?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let header = 4 + 4 * rank as u64;
    let count = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| fmt_err(path, format!("dimensions {dims:?} overflow")))?;
    if !gz && header + count != file_len {
        return Err(fmt_err(
            path,
            format!(
                "the header declares dimensions {dims:?} = {count} bytes of data, but the file holds {} bytes after its {header}-byte header",
                file_len.saturating_sub(header)
            ),
        ));
    }
    if gz && count > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(fmt_err(
            path,
            format!(
                "the header declares dimensions {dims:?} = {count} bytes, more than a {file_len}-byte gzip file can hold"
            ),
        ));
    }
    let mut data = Vec::new();
    r.take(count + 1).read_to_end(&mut data).map_err(read_err)?;
    if data.len() as u64 != count {
        return Err(fmt_err(
            path,
            format!(
                "the header declares dimensions {dims:?} = {count} bytes of data, but the decompressed file holds {}{} bytes",
                if data.len() as u64 > count {
                    "more than "
                } else {
                    ""
                },
                data.len().min(count as usize)
            ),
        ));
    }
    Ok(Idx { dims, data })
}
