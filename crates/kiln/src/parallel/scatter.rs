//! Splitting a batch across devices with PyTorch's `Tensor.chunk` rule.

/// Chunk sizes `tensor.chunk(n)` produces for a batch of `batch`: chunks of `⌈batch/n⌉`, the
/// last one shorter, and possibly fewer than `n` chunks (B=10, n=4 → 3,3,3,1; B=6, n=4 →
/// 2,2,2).
///
/// ```
/// assert_eq!(kiln::parallel::chunk_sizes(10, 4), vec![3, 3, 3, 1]);
/// assert_eq!(kiln::parallel::chunk_sizes(6, 4), vec![2, 2, 2]);
/// ```
pub fn chunk_sizes(batch: usize, n: usize) -> Vec<usize> {
    if batch == 0 || n == 0 {
        return Vec::new();
    }
    let size = batch.div_ceil(n);
    let mut out = Vec::new();
    let mut left = batch;
    while left > 0 {
        let s = size.min(left);
        out.push(s);
        left -= s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_chunk() {
        assert_eq!(chunk_sizes(10, 4), vec![3, 3, 3, 1]);
        assert_eq!(chunk_sizes(6, 4), vec![2, 2, 2]);
        assert_eq!(chunk_sizes(5, 2), vec![3, 2]);
        assert_eq!(chunk_sizes(3, 4), vec![1, 1, 1]);
        assert_eq!(chunk_sizes(8, 3), vec![3, 3, 2]);
        assert_eq!(chunk_sizes(9, 4), vec![3, 3, 3]);
        assert!(chunk_sizes(0, 2).is_empty());
    }
}
