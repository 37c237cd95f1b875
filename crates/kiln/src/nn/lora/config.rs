//! `LoraConfig`: PEFT's `LoraConfig` — rank, alpha, dropout and the target modules — and
//! how its target patterns select layers.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of a LoRA fine-tune, as PEFT's `LoraConfig(r, lora_alpha, lora_dropout,
/// target_modules, modules_to_save)` with `bias="none"`.
///
/// A target pattern selects a module by its dotted path, as PEFT's `target_modules` does: an
/// exact path (`fc1`, `layer4.1.conv2`), a suffix after a dot (`conv2` selects
/// `layer4.1.conv2`), a glob over the whole path (`layer*.conv*`), or a regex over the whole
/// path with a `re:` prefix (`re:^fc[12]$`). Only `Linear` and `Conv2d` layers are candidates.
///
/// ```
/// use kiln::nn::lora::LoraConfig;
/// let cfg = LoraConfig::new(8, 16.0, &["fc1", "conv*"]);
/// assert_eq!(cfg.scaling(), 2.0);
/// assert!(cfg.validate().is_ok());
/// assert_eq!(LoraConfig::new(0, 16.0, &["fc1"]).validate().unwrap_err().code(), "K0742");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// The rank `r` of the update `B·A` (`lora_A` is `[r, in]`, `lora_B` `[out, r]`).
    pub r: usize,
    /// `lora_alpha`: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// `lora_dropout`: dropout probability applied to the adapter's input (0 = none).
    #[serde(default)]
    pub dropout: f64,
    /// Target patterns (see the type's documentation).
    pub target_modules: Vec<String>,
    /// Modules trained and saved in full beside the adapters (PEFT's `modules_to_save`; the
    /// new classification head of a fine-tune).
    #[serde(default)]
    pub modules_to_save: Vec<String>,
}

impl LoraConfig {
    /// A configuration without dropout or `modules_to_save`.
    pub fn new<S: AsRef<str>>(r: usize, alpha: f64, target_modules: &[S]) -> Self {
        LoraConfig {
            r,
            alpha,
            dropout: 0.0,
            target_modules: target_modules
                .iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            modules_to_save: Vec::new(),
        }
    }

    /// `alpha / r`, the factor of the low-rank update.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.r.max(1) as f64
    }

    /// Checks the settings (not the targets, which need a model).
    ///
    /// # Errors
    /// `K0742` for `r == 0`, an `alpha` that is not finite and positive, a dropout outside
    /// `[0, 1)` or no target pattern; `K0402` for a target pattern that does not compile.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, got: String, expected: &str| Error::LoraConfig {
            what: what.into(),
            got,
            expected: expected.into(),
        };
        if self.r == 0 {
            return Err(bad(
                "rank r",
                "0".into(),
                "r >= 1 (--lora-rank 8 is PEFT's default)",
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(bad(
                "lora_alpha",
                self.alpha.to_string(),
                "a finite value > 0 (the update is scaled by alpha / r)",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(bad(
                "lora_dropout",
                self.dropout.to_string(),
                "a probability in [0, 1)",
            ));
        }
        if self.target_modules.is_empty() {
            return Err(bad(
                "target_modules",
                "empty".into(),
                "at least one pattern (e.g. --lora-targets fc1 fc2)",
            ));
        }
        for t in &self.target_modules {
            TargetPattern::new(t)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Kind {
    /// Exact path or suffix after a dot (PEFT's list form).
    Name(String),
    Glob(glob::Pattern),
    Regex(regex::Regex),
}

/// One compiled target pattern.
#[derive(Clone, Debug)]
pub struct TargetPattern {
    text: String,
    kind: Kind,
}

impl TargetPattern {
    /// Compiles a pattern: `re:REGEX` (whole-path match), a glob when it holds `*`, `?` or
    /// `[`, otherwise an exact name or dotted suffix.
    ///
    /// # Errors
    /// `K0402` for an empty pattern or one that does not compile.
    pub fn new(text: &str) -> Result<Self> {
        let bad = |problem: String| Error::Pattern {
            pattern: text.to_string(),
            problem,
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("is empty".into()));
        }
        let kind = if let Some(re) = t.strip_prefix("re:") {
            let full = format!("^(?:{re})$");
            Kind::Regex(
                regex::Regex::new(&full).map_err(|e| bad(format!("is not a valid regex: {e}")))?,
            )
        } else if t.contains(['*', '?', '[']) {
            Kind::Glob(glob::Pattern::new(t).map_err(|e| bad(format!("is not a valid glob: {e}")))?)
        } else {
            Kind::Name(t.to_string())
        };
        Ok(TargetPattern {
            text: text.to_string(),
            kind,
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the module path `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Name(n) => {
                name == n
                    || (name.len() > n.len()
                        && name.ends_with(n.as_str())
                        && name[..name.len() - n.len()].ends_with('.'))
            }
            Kind::Glob(g) => g.matches(name),
            Kind::Regex(r) => r.is_match(name),
        }
    }
}

/// The paths among `candidates` (the model's Linear/Conv2d layers, in order) that any pattern
/// selects; every pattern must select at least one.
///
/// # Errors
/// `K0741` naming the patterns that select nothing and listing candidate names; `K0402` for
/// a pattern that does not compile.
pub fn select_targets<S: AsRef<str>>(patterns: &[S], candidates: &[String]) -> Result<Vec<String>> {
    let compiled: Vec<TargetPattern> = patterns
        .iter()
        .map(|p| TargetPattern::new(p.as_ref()))
        .collect::<Result<_>>()?;
    let unmatched: Vec<String> = compiled
        .iter()
        .filter(|p| !candidates.iter().any(|c| p.matches(c)))
        .map(|p| format!("'{}'", p.text()))
        .collect();
    if !unmatched.is_empty() {
        return Err(Error::LoraNoMatch {
            patterns: unmatched.join(", "),
            available: preview(candidates),
        });
    }
    Ok(candidates
        .iter()
        .filter(|c| compiled.iter().any(|p| p.matches(c)))
        .cloned()
        .collect())
}

fn preview(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    let mut s: Vec<String> = names.iter().take(12).cloned().collect();
    if names.len() > 12 {
        s.push(format!("… ({} in all)", names.len()));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["conv1", "layer1.0.conv1", "layer1.0.conv2", "fc1", "fc"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn exact_suffix_glob_and_regex() {
        let sel = |p: &[&str]| select_targets(p, &names()).unwrap();
        assert_eq!(sel(&["conv1"]), ["conv1", "layer1.0.conv1"]);
        assert_eq!(
            sel(&["fc"]),
            ["fc"],
            "no prefix match: fc does not select fc1"
        );
        assert_eq!(sel(&["layer1.*"]), ["layer1.0.conv1", "layer1.0.conv2"]);
        assert_eq!(sel(&["re:fc1?"]), ["fc1", "fc"]);
        assert_eq!(sel(&["0.conv2", "fc1"]), ["layer1.0.conv2", "fc1"]);
        assert!(!TargetPattern::new("conv1").unwrap().matches("xconv1"));
    }

    #[test]
    fn no_match_names_the_pattern_and_the_layers() {
        let e = select_targets(&["fc1", "attn"], &names()).unwrap_err();
        assert_eq!(e.code(), "K0741");
        let m = e.to_string();
        assert!(m.contains("'attn'") && !m.contains("'fc1'") && m.contains("layer1.0.conv2"));
        assert_eq!(
            select_targets(&["re:("], &names()).unwrap_err().code(),
            "K0402"
        );
    }
}
