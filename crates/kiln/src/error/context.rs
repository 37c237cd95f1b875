//! Helpers that attach what kiln was doing to backend errors.

use super::{Error, Result};

/// Adds an operation name to a backend error: `t.matmul(&w).ctx("Linear fc1")?`.
pub trait Context<T> {
    /// Wraps the error with `op`.
    fn ctx(self, op: &str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, candle_core::Error> {
    fn ctx(self, op: &str) -> Result<T> {
        self.map_err(|e| match Error::from(e) {
            Error::Backend { source, .. } => Error::Backend {
                op: op.to_string(),
                source,
            },
            other => other,
        })
    }
}

/// Formats dims the way the messages show them: `[16, 3, 32, 32]`.
pub fn shape_str(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}
