//! `Selector`: picks parameters (or state-dict keys) by name — the one pattern type used by
//! freezing, parameter groups, key renames and load filters.
//!
//! A pattern is a **regex** when it starts with `re:` or `^` or ends with `$`
//! (`^fc\.`, `re:layer[34]\..*`), otherwise a **glob** (`layer4.*`, `*.bn*.weight`). A glob
//! without wildcards names a module or parameter: `fc` selects `fc.weight` and `fc.bias`,
//! `layer4.1` everything under it. Patterns are compiled up front; an invalid pattern, or one
//! that selects nothing, is an error (K0402) so a typo never silently freezes nothing.
//!
//! ```
//! use kiln::finetune::Selector;
//! let s = Selector::new(&["layer4.*", r"^fc\."])?;
//! assert!(s.matches("layer4.0.conv1.weight") && s.matches("fc.bias"));
//! assert!(!s.matches("layer3.0.conv1.weight"));
//! # Ok::<(), kiln::Error>(())
//! ```

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
enum Matcher {
    Regex(regex::Regex),
    Glob(glob::Pattern),
    Prefix(String),
}

/// One compiled pattern with its source text.
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    matcher: Matcher,
}

impl Pattern {
    /// Compiles one pattern.
    ///
    /// # Errors
    /// `K0402` for an invalid regex or glob.
    pub fn new(text: &str) -> Result<Self> {
        let bad = |problem: String| Error::Pattern {
            pattern: text.to_string(),
            problem,
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("is empty".into()));
        }
        let matcher = if let Some(re) = t.strip_prefix("re:") {
            Matcher::Regex(
                regex::Regex::new(re).map_err(|e| bad(format!("is not a valid regex: {e}")))?,
            )
        } else if t.starts_with('^') || t.ends_with('$') {
            Matcher::Regex(
                regex::Regex::new(t).map_err(|e| bad(format!("is not a valid regex: {e}")))?,
            )
        } else if t.contains(['*', '?', '[']) {
            Matcher::Glob(
                glob::Pattern::new(t).map_err(|e| bad(format!("is not a valid glob: {e}")))?,
            )
        } else {
            Matcher::Prefix(t.to_string())
        };
        Ok(Pattern {
            text: text.to_string(),
            matcher,
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Regex(r) => r.is_match(name),
            Matcher::Glob(g) => g.matches(name),
            Matcher::Prefix(p) => {
                name == p || (name.starts_with(p.as_str()) && name[p.len()..].starts_with('.'))
            }
        }
    }
}

/// A set of patterns; a name is selected when any pattern matches it.
#[derive(Clone, Debug)]
pub struct Selector {
    patterns: Vec<Pattern>,
}

impl Selector {
    /// Compiles every pattern.
    ///
    /// # Errors
    /// `K0402` naming the first invalid pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        Ok(Selector {
            patterns: patterns
                .iter()
                .map(|p| Pattern::new(p.as_ref()))
                .collect::<Result<_>>()?,
        })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    /// The selected names among `names`, in their order, checking that every pattern
    /// selects at least one.
    ///
    /// # Errors
    /// `K0402` for a pattern that matches none of `names`, with the closest names as a hint.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<String>> {
        for p in &self.patterns {
            if !names.iter().any(|n| p.matches(n.as_ref())) {
                let all: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
                return Err(Error::Pattern {
                    pattern: p.text().to_string(),
                    problem: format!("matches no name; names look like: {}", preview(&all)),
                });
            }
        }
        Ok(names
            .iter()
            .map(|n| n.as_ref())
            .filter(|n| self.matches(n))
            .map(str::to_string)
            .collect())
    }
}

fn preview(names: &[&str]) -> String {
    let mut s: Vec<String> = names.iter().take(6).map(|n| n.to_string()).collect();
    if names.len() > 6 {
        s.push(format!("… ({} in all)", names.len()));
    }
    if s.is_empty() {
        "(none)".into()
    } else {
        s.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 5] = [
        "conv1.weight",
        "layer4.0.conv1.weight",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ];

    #[test]
    fn globs_regexes_and_prefixes() {
        let sel = |p: &str| Selector::new(&[p]).unwrap().select(&NAMES).unwrap();
        assert_eq!(
            sel("layer4.*"),
            ["layer4.0.conv1.weight", "layer4.1.bn2.bias"]
        );
        assert_eq!(sel(r"^fc\."), ["fc.weight", "fc.bias"]);
        assert_eq!(sel("fc"), ["fc.weight", "fc.bias"]);
        assert_eq!(sel("re:conv1"), ["conv1.weight", "layer4.0.conv1.weight"]);
        assert_eq!(sel("*.bias"), ["layer4.1.bn2.bias", "fc.bias"]);
        assert_eq!(sel("layer4.1"), ["layer4.1.bn2.bias"]);
    }

    #[test]
    fn prefix_does_not_match_longer_names() {
        let s = Selector::new(&["fc"]).unwrap();
        assert!(!s.matches("fc2.weight"));
    }

    #[test]
    fn invalid_and_empty_matches_are_errors() {
        assert_eq!(Selector::new(&["^fc("]).unwrap_err().code(), "K0402");
        assert_eq!(Selector::new(&["layer[4"]).unwrap_err().code(), "K0402");
        let e = Selector::new(&["layer9.*"])
            .unwrap()
            .select(&NAMES)
            .unwrap_err();
        assert_eq!(e.code(), "K0402");
        assert!(e.to_string().contains("matches no name"), "{e}");
    }
}
