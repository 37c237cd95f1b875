//! Parameter groups from name patterns: `--group 'layer4.*=1e-4' --group '^fc\.=1e-2'`.
//!
//! Each rule selects parameters with a [`Selector`] pattern and gives them their own
//! learning rate. Trainable parameters no rule selects form the *default group* (the
//! optimizer's base learning rate), placed first; frozen parameters are left out (they join
//! the optimizer later, when a schedule unfreezes them). A group with `lr = 0` leaves its
//! parameters bit-identical, exactly like freezing them (only slower: their gradients are
//! still computed).

use super::Selector;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::GroupSpec;
use serde::{Deserialize, Serialize};

/// One `PATTERN=LR` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRule {
    /// A [`Selector`] pattern (glob, regex or module prefix).
    pub pattern: String,
    /// The group's learning rate.
    pub lr: f64,
}

impl GroupRule {
    /// Parses `PATTERN=LR` (the last `=` splits; the pattern may itself contain `=`).
    ///
    /// # Errors
    /// `K0003` without `=`, with an empty pattern, or with a learning rate that is not a
    /// finite number `>= 0`; `K0402` for a pattern that does not compile.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "group",
                text,
                "PATTERN=LR, e.g. 'layer4.*=1e-4' or '^fc\\.=1e-2'",
            )
        };
        let (pattern, lr) = text.rsplit_once('=').ok_or_else(bad)?;
        let lr: f64 = lr.trim().parse().map_err(|_| bad())?;
        if pattern.trim().is_empty() || !(lr.is_finite() && lr >= 0.0) {
            return Err(bad());
        }
        Selector::new(&[pattern])?;
        Ok(GroupRule {
            pattern: pattern.to_string(),
            lr,
        })
    }
}

/// The optimizer's parameter groups for `model` under `rules`: first the default group (every
/// trainable parameter no rule selects, no override) when it is not empty, then one group per
/// rule with its learning rate, each in the model's parameter order.
///
/// # Errors
/// `K0402` for a pattern that selects no parameter at all; `K0602` when two rules select the
/// same parameter (naming it and both patterns); `K0601` when a rule selects only frozen
/// parameters, or when no parameter is trainable.
pub fn param_groups(model: &dyn Module, rules: &[GroupRule]) -> Result<Vec<GroupSpec>> {
    let params = model.named_parameters();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    let selectors = rules
        .iter()
        .map(|r| {
            let s = Selector::new(&[r.pattern.as_str()])?;
            s.select(&names)?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let has_default = params
        .iter()
        .any(|(n, p)| p.requires_grad() && !selectors.iter().any(|s| s.matches(n)));
    let offset = usize::from(has_default);
    let mut default = Vec::new();
    let mut groups: Vec<Vec<(String, crate::nn::Param)>> = vec![Vec::new(); rules.len()];
    for (name, p) in &params {
        let owners: Vec<usize> = (0..rules.len())
            .filter(|&i| selectors[i].matches(name))
            .collect();
        if let [a, b, ..] = owners.as_slice() {
            return Err(Error::DuplicateParameter {
                name: name.clone(),
                first: a + offset,
                second: b + offset,
                detail: format!(
                    " (selected by the group patterns '{}' and '{}')",
                    rules[*a].pattern, rules[*b].pattern
                ),
            });
        }
        if !p.requires_grad() {
            continue;
        }
        match owners.first() {
            Some(&i) => groups[i].push((name.clone(), p.clone())),
            None => default.push((name.clone(), p.clone())),
        }
    }
    if params.iter().all(|(_, p)| !p.requires_grad()) {
        return Err(Error::EmptyParameterList {
            detail: format!(
                ": all {} parameters of the model are frozen (requires_grad=False)",
                params.len()
            ),
        });
    }
    if let Some(i) = groups.iter().position(Vec::is_empty) {
        return Err(Error::EmptyParameterList {
            detail: format!(
                " for the group '{}={}': every parameter it selects is frozen",
                rules[i].pattern, rules[i].lr
            ),
        });
    }
    let mut out = Vec::with_capacity(rules.len() + 1);
    if has_default {
        out.push(GroupSpec::new(default));
    }
    for (rule, params) in rules.iter().zip(groups) {
        out.push(GroupSpec::new(params).lr(rule.lr));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::freeze;
    use crate::models::{LeNet, LeNetConfig};

    fn rule(p: &str) -> GroupRule {
        GroupRule::parse(p).unwrap()
    }

    #[test]
    fn parse_splits_at_the_last_equals_sign() {
        assert_eq!(
            rule("layer4.*=1e-4"),
            GroupRule {
                pattern: "layer4.*".into(),
                lr: 1e-4
            }
        );
        assert_eq!(rule("re:a=b=0.5").pattern, "re:a=b");
        for bad in ["fc", "fc=", "=0.1", "fc=-1", "fc=nan", "fc=x"] {
            assert_eq!(GroupRule::parse(bad).unwrap_err().code(), "K0003", "{bad}");
        }
        assert_eq!(GroupRule::parse("^fc(=0.1").unwrap_err().code(), "K0402");
    }

    #[test]
    fn default_group_first_then_rules() {
        let m = LeNet::new(LeNetConfig::default()).unwrap();
        let g = param_groups(&m, &[rule("conv*=1e-4"), rule(r"^fc\.=1e-2")]).unwrap();
        let names =
            |i: usize| -> Vec<String> { g[i].params.iter().map(|(n, _)| n.clone()).collect() };
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].options.lr, None);
        assert_eq!(
            names(0),
            ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        );
        assert_eq!(g[1].options.lr, Some(1e-4));
        assert_eq!(names(2), ["fc.weight", "fc.bias"]);
        // Every trainable parameter covered by rules: no default group.
        let g = param_groups(&m, &[rule("*=0.1")]).unwrap();
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn overlap_frozen_only_and_nothing_trainable_are_coded_errors() {
        let m = LeNet::new(LeNetConfig::default()).unwrap();
        let e = param_groups(&m, &[rule("fc*=0.1"), rule("*.bias=0.2")]).unwrap_err();
        assert_eq!(e.code(), "K0602");
        let text = e.to_string();
        assert!(text.contains("'fc1.bias' is in groups 1 and 2"), "{text}");
        assert!(text.contains("'fc*' and '*.bias'"), "{text}");
        assert_eq!(
            param_groups(&m, &[rule("layer9=0.1")]).unwrap_err().code(),
            "K0402"
        );
        freeze(&m, &Selector::new(&["conv*"]).unwrap()).unwrap();
        let e = param_groups(&m, &[rule("conv1=0.1")]).unwrap_err();
        assert_eq!(e.code(), "K0601");
        assert!(e.to_string().contains("'conv1=0.1'"), "{e}");
        freeze(&m, &Selector::new(&["*"]).unwrap()).unwrap();
        let e = param_groups(&m, &[]).unwrap_err();
        assert_eq!(e.code(), "K0601");
        assert!(e.to_string().contains("all 10 parameters"), "{e}");
    }
}
