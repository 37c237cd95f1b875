//! `Precision`: Lightning's `Trainer(precision=...)` for kiln's trainer.

use crate::error::{Error, Result};
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// How a run computes (Lightning's names).
///
/// - `32` ([`Precision::F32`], the default): everything in f32, exactly as before mixed
///   precision existed.
/// - `bf16-mixed`: `torch.autocast(dtype=torch.bfloat16)` around every forward (training
///   and evaluation; see [`super::autocast`]); master weights, gradients and optimizer state
///   stay f32; no loss scaling (bf16 has f32's range).
/// - `16-mixed`: `torch.autocast(dtype=torch.float16)` plus a [`super::GradScaler`]: the
///   loss is scaled before backward, the gradients unscaled before clipping, a step whose
///   gradients hold inf/NaN skipped, the scale updated once per optimizer update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// f32 throughout (`"32"`, also accepted as `"32-true"`).
    #[default]
    #[serde(rename = "32")]
    F32,
    /// bf16 autocast (`"bf16-mixed"`).
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
    /// f16 autocast with dynamic loss scaling (`"16-mixed"`).
    #[serde(rename = "16-mixed")]
    F16Mixed,
}

impl Precision {
    /// Lightning's name: `32`, `bf16-mixed`, `16-mixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "32",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16Mixed => "16-mixed",
        }
    }

    /// Parses `32` (or `32-true`), `bf16-mixed` or `16-mixed`.
    ///
    /// # Errors
    /// `K0003` listing the accepted names.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "32" | "32-true" => Ok(Precision::F32),
            "bf16-mixed" => Ok(Precision::Bf16Mixed),
            "16-mixed" => Ok(Precision::F16Mixed),
            _ => Err(Error::invalid(
                "precision",
                text,
                "32, bf16-mixed or 16-mixed (Lightning's names)",
            )),
        }
    }

    /// The autocast dtype (`None` for `32`).
    pub fn autocast_dtype(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16Mixed => Some(DType::BF16),
            Precision::F16Mixed => Some(DType::F16),
        }
    }

    /// Whether the run scales its loss with a [`super::GradScaler`] (`16-mixed`).
    pub fn uses_grad_scaler(self) -> bool {
        self == Precision::F16Mixed
    }

    /// Whether this is the default `32`.
    pub fn is_default(&self) -> bool {
        *self == Precision::F32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for p in [Precision::F32, Precision::Bf16Mixed, Precision::F16Mixed] {
            assert_eq!(Precision::parse(p.as_str()).unwrap(), p);
            let j = serde_json::to_string(&p).unwrap();
            assert_eq!(j, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Precision>(&j).unwrap(), p);
        }
        assert_eq!(Precision::parse("32-true").unwrap(), Precision::F32);
        assert_eq!(Precision::parse("fp8").unwrap_err().code(), "K0003");
        assert_eq!(Precision::Bf16Mixed.autocast_dtype(), Some(DType::BF16));
        assert!(Precision::F16Mixed.uses_grad_scaler());
        assert!(!Precision::Bf16Mixed.uses_grad_scaler());
    }
}
