//! TFRecord framing, the container of TensorBoard event files: each record is
//! `u64 length (little endian) · masked CRC-32C of those 8 bytes · data · masked CRC-32C of the
//! data`, as TensorFlow's `RecordWriter` and tensorboard's `tf_record` writer lay it out.

use crate::error::{Error, Result};
use std::path::Path;

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`), the checksum TFRecord uses.
const POLY: u32 = 0x82F6_3B78;

/// The byte-at-a-time table of CRC-32C, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of `data` (`crc32c(b"123456789") == 0xE3069283`).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping), so that a
/// CRC stored inside checksummed data does not checksum to itself.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One framed record: header, data and footer.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The largest record [`split_records`] accepts (an event is a few hundred bytes; this bounds
/// what a damaged length can make it look for).
pub const MAX_RECORD_LEN: u64 = 64 << 20;

fn u32_at(bytes: &[u8], at: usize, path: &str) -> Result<u32> {
    let b = bytes
        .get(at..at.saturating_add(4))
        .ok_or_else(|| Error::Truncated {
            path: path.into(),
            detail: format!("a TFRecord CRC at byte {at} is cut off"),
        })?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits a whole event file into its records' data, checking both CRCs of every record.
///
/// # Errors
/// `K0501` when a record is cut off; `K0502` for a CRC mismatch or a length over
/// [`MAX_RECORD_LEN`]. `path` only names the file in the error.
pub fn split_records<'a>(bytes: &'a [u8], path: &str) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8).ok_or_else(|| Error::Truncated {
            path: path.into(),
            detail: format!("the TFRecord header at byte {at} is cut off"),
        })?;
        let len = u64::from_le_bytes([
            header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7],
        ]);
        if u32_at(bytes, at + 8, path)? != masked_crc32c(header) {
            return Err(Error::Corrupt {
                path: path.into(),
                detail: format!("the length CRC of the TFRecord at byte {at} does not match"),
            });
        }
        if len > MAX_RECORD_LEN {
            return Err(Error::Corrupt {
                path: path.into(),
                detail: format!(
                    "the TFRecord at byte {at} announces {len} bytes (more than {MAX_RECORD_LEN})"
                ),
            });
        }
        let start = at + 12;
        let end = start + len as usize;
        let data = bytes.get(start..end).ok_or_else(|| Error::Truncated {
            path: path.into(),
            detail: format!(
                "the TFRecord at byte {at} announces {len} bytes, {} remain",
                bytes.len() - start.min(bytes.len())
            ),
        })?;
        if u32_at(bytes, end, path)? != masked_crc32c(data) {
            return Err(Error::Corrupt {
                path: path.into(),
                detail: format!("the data CRC of the TFRecord at byte {at} does not match"),
            });
        }
        out.push(data);
        at = end + 4;
    }
    Ok(out)
}

/// Reads a file and splits it with [`split_records`], returning owned records.
///
/// # Errors
/// `K0002` when the file cannot be read; those of [`split_records`].
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let name = path.display().to_string();
    Ok(split_records(&bytes, &name)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_standard_vectors() {
        // RFC 3720 B.4 and the common check value.
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // Values of tensorboard 2.21's
        // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(&5u64.to_le_bytes()), 0x3e04_b2ea);
    }

    #[test]
    fn framing_round_trips_and_checks_both_crcs() {
        let mut file = frame(b"hello");
        file.extend(frame(b""));
        file.extend(frame(&[7u8; 300]));
        assert_eq!(file.len(), 5 + 300 + 3 * 16);
        assert_eq!(&file[..8], &5u64.to_le_bytes());
        let recs = split_records(&file, "f").unwrap();
        assert_eq!(recs, vec![&b"hello"[..], &b""[..], &[7u8; 300][..]]);

        let mut bad = file.clone();
        bad[12] ^= 1; // a data byte of the first record
        let e = split_records(&bad, "f").unwrap_err();
        assert_eq!(e.code(), "K0502");
        assert!(e.to_string().contains("data CRC"), "{e}");
        let mut bad = file.clone();
        bad[0] = 6; // the length
        assert_eq!(split_records(&bad, "f").unwrap_err().code(), "K0502");
        let e = split_records(&file[..file.len() - 2], "f").unwrap_err();
        assert_eq!(e.code(), "K0501");
        let e = split_records(&file[..10], "f").unwrap_err();
        assert_eq!(e.code(), "K0501");
        let mut huge = (MAX_RECORD_LEN + 1).to_le_bytes().to_vec();
        huge.extend(masked_crc32c(&huge.clone()).to_le_bytes());
        assert_eq!(split_records(&huge, "f").unwrap_err().code(), "K0502");
    }
}
