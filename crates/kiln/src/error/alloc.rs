//! Fallible allocation: a request the machine cannot satisfy becomes `K0004` with the size
//! asked for, instead of aborting the process.

use super::{Error, Result, human_bytes};

/// The number of elements of `dims`, or `K0004` when it overflows.
pub fn numel(dims: &[usize], elem_size: usize) -> Result<usize> {
    let mut n: usize = 1;
    for &d in dims {
        n = n.checked_mul(d).ok_or_else(|| too_big(u64::MAX, "cpu"))?;
    }
    n.checked_mul(elem_size)
        .ok_or_else(|| too_big(u64::MAX, "cpu"))?;
    Ok(n)
}

fn too_big(bytes: u64, device: &str) -> Error {
    Error::OutOfMemory {
        device: device.to_string(),
        bytes,
        human: if bytes == u64::MAX {
            "more than the address space".to_string()
        } else {
            human_bytes(bytes)
        },
    }
}

/// A vector with capacity for `n` elements, or `K0004` naming the bytes asked for.
pub fn try_vec<T>(n: usize) -> Result<Vec<T>> {
    let bytes = (n as u128) * (std::mem::size_of::<T>() as u128);
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big(bytes, "cpu"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_allocation_is_k0004_with_the_size() {
        let e = try_vec::<f32>(1 << 50).unwrap_err();
        assert_eq!(e.code(), "K0004");
        assert!(
            e.to_string().contains("4503599627370496 bytes") && e.to_string().contains("PiB"),
            "{e}"
        );
        assert_eq!(numel(&[usize::MAX, 2], 4).unwrap_err().code(), "K0004");
        assert_eq!(try_vec::<u8>(10).unwrap().capacity(), 10);
    }
}
