//! Hard limits of the pickle reader. A file that exceeds one is refused with `K0505`
//! naming the limit; none of them is reached by a real weights file.

/// Most entries the memo may hold.
pub const MAX_MEMO: usize = 1 << 24;
/// Deepest nesting of MARKs (open tuples/lists/dicts being built).
pub const MAX_MARK_DEPTH: usize = 10_000;
/// Deepest nesting of containers in the result (also catches self-referencing containers).
pub const MAX_DEPTH: usize = 256;
/// Most objects the pickle may create.
pub const MAX_OBJECTS: usize = 1 << 26;
/// Most nodes of the result tree: a container referenced several times through the memo
/// is copied each time, so this stops "billion laughs" expansion.
pub const MAX_OUTPUT_NODES: usize = 1 << 22;
/// Longest string or bytes object, in bytes.
pub const MAX_STRING_LEN: usize = 1 << 30;
/// Longest LONG1/LONG4 integer, in bytes.
pub const MAX_LONG_BYTES: usize = 1 << 16;
/// Highest tensor rank.
pub const MAX_RANK: usize = 64;
