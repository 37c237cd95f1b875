//! `CUDA_VISIBLE_DEVICES`: which physical GPUs the process sees, in which logical order.
//!
//! The driver applies the variable itself; kiln reads it too, to tell users which physical
//! GPU a logical `cuda:N` is (`kiln devices`) and why no device is visible.

/// The parsed value of `CUDA_VISIBLE_DEVICES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Unset: every GPU is visible, logical index = physical index.
    All,
    /// A list of physical indices or UUIDs (`0,2`, `GPU-8a3…`), in logical order. The
    /// driver stops at the first invalid entry, and so does this list.
    List(Vec<String>),
    /// Set but empty or starting with an invalid entry (`""`, `-1`, `none`): no GPU visible.
    HidesAll(String),
}

impl Visible {
    /// Reads the variable from the environment.
    pub fn from_env() -> Self {
        match std::env::var("CUDA_VISIBLE_DEVICES") {
            Err(_) => Visible::All,
            Ok(v) => Self::parse(&v),
        }
    }

    /// Parses a value of the variable the way the CUDA driver does.
    pub fn parse(value: &str) -> Self {
        let mut out = Vec::new();
        for entry in value.split(',') {
            let e = entry.trim();
            let valid = !e.is_empty()
                && (e.chars().all(|c| c.is_ascii_digit())
                    || e.starts_with("GPU-")
                    || e.starts_with("MIG-"));
            if !valid {
                break;
            }
            out.push(e.to_string());
        }
        if out.is_empty() {
            Visible::HidesAll(value.to_string())
        } else {
            Visible::List(out)
        }
    }

    /// The physical device (index or UUID) behind logical index `logical`.
    pub fn physical(&self, logical: usize) -> Option<String> {
        match self {
            Visible::All => Some(logical.to_string()),
            Visible::List(v) => v.get(logical).cloned(),
            Visible::HidesAll(_) => None,
        }
    }

    /// A short description for messages: `CUDA_VISIBLE_DEVICES=0,2`.
    pub fn describe(&self) -> String {
        match self {
            Visible::All => "CUDA_VISIBLE_DEVICES unset (all GPUs visible)".to_string(),
            Visible::List(v) => format!("CUDA_VISIBLE_DEVICES={}", v.join(",")),
            Visible::HidesAll(v) => format!("CUDA_VISIBLE_DEVICES='{v}' hides every GPU"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_driver() {
        assert_eq!(
            Visible::parse("1,0"),
            Visible::List(vec!["1".into(), "0".into()])
        );
        assert_eq!(Visible::parse("2,-1,0"), Visible::List(vec!["2".into()]));
        assert!(matches!(Visible::parse(""), Visible::HidesAll(_)));
        assert!(matches!(Visible::parse("-1"), Visible::HidesAll(_)));
        assert_eq!(Visible::parse("1,0").physical(0).as_deref(), Some("1"));
        assert_eq!(Visible::All.physical(3).as_deref(), Some("3"));
        assert_eq!(
            Visible::parse("GPU-abc").physical(0).as_deref(),
            Some("GPU-abc")
        );
    }
}
