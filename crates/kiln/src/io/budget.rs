//! The read budget: a cap on the bytes of objects one read may build, proportional to the
//! file's size. A pickle can reference one object (a 1 MiB string, a dict) millions of times
//! through its memo for two bytes a reference; kiln's [`crate::io::Value`] tree holds a copy
//! per reference, so without a cap a 1 MB file could ask for terabytes. The pickle reader
//! charges every copy it makes (strings, bytes, containers, id vectors cloned by
//! constructors) and every node of the result; the legacy reader also charges its storage
//! copies and placeholders; the zip reader charges records read more than once; the
//! safetensors reader charges its header. Tensor data read once from the file's own
//! records is not charged (it is bounded by the file size already).
//!
//! Default: `max(64 MiB, 16 × file size)` ([`default_limit`]); override with
//! [`crate::io::LoadOptions::max_expanded_bytes`]. Exceeding it is `K0508`.

use crate::error::{Error, Result, human_bytes};
use std::cell::Cell;

/// The smallest default budget (small files may build this much).
pub const FLOOR: u64 = 64 << 20;
/// Default budget per byte of file.
pub const RATIO: u64 = 16;

/// The default budget of a file of `file_len` bytes: `max(FLOOR, RATIO × file_len)`.
pub fn default_limit(file_len: u64) -> u64 {
    FLOOR.max(file_len.saturating_mul(RATIO))
}

/// A running total of what a read has built, against its limit. Interior mutability, so
/// readers that walk their object graph through `&self` can charge it.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    spent: Cell<u64>,
    path: String,
}

impl Budget {
    /// The budget of a read of `path` (`file_len` bytes): `limit` when given, else
    /// [`default_limit`].
    pub fn new(path: &str, file_len: u64, limit: Option<u64>) -> Self {
        Budget {
            limit: limit.unwrap_or_else(|| default_limit(file_len)),
            spent: Cell::new(0),
            path: path.to_string(),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged so far.
    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    /// Checks, without charging, that `bytes` more would still fit.
    ///
    /// # Errors
    /// `K0508` as [`Budget::charge`].
    pub fn check(&self, bytes: u64, what: &dyn std::fmt::Display) -> Result<()> {
        if self.spent.get().saturating_add(bytes) > self.limit {
            return Err(self.exceeded(what));
        }
        Ok(())
    }

    fn exceeded(&self, what: &dyn std::fmt::Display) -> Error {
        Error::ExpansionLimit {
            path: self.path.clone(),
            what: what.to_string(),
            limit: self.limit,
            human: human_bytes(self.limit),
        }
    }

    /// Charges `bytes` for `what` (called before the allocation it pays for).
    ///
    /// # Errors
    /// `K0508` naming `what`, the limit and the override when the total passes the limit.
    pub fn charge(&self, bytes: u64, what: &dyn std::fmt::Display) -> Result<()> {
        let total = self.spent.get().saturating_add(bytes);
        if total > self.limit {
            return Err(self.exceeded(what));
        }
        self.spent.set(total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_floor_or_ratio() {
        assert_eq!(default_limit(0), FLOOR);
        assert_eq!(default_limit(1 << 30), 16 << 30);
        assert_eq!(default_limit(u64::MAX), u64::MAX);
    }

    #[test]
    fn charge_past_the_limit_is_k0508_naming_the_override() {
        let b = Budget::new("x.pt", 10, Some(100));
        b.charge(60, &"a string").unwrap();
        let e = b.charge(41, &"a string").unwrap_err();
        assert_eq!(e.code(), "K0508");
        assert!(e.to_string().contains("100 bytes"), "{e}");
        assert!(e.hint().contains("max_expanded_bytes"), "{}", e.hint());
        assert_eq!(b.spent(), 60);
    }
}
