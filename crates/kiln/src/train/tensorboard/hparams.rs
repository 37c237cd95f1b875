//! The HParams plugin's summaries, as `torch.utils.tensorboard.summary.hparams` writes them:
//! three `Summary.Value`s with `plugin_name = "hparams"` whose content is a
//! `HParamsPluginData { version = 1, experiment = 2, session_start_info = 3,
//! session_end_info = 4 }` (version 0, left out).

use super::proto::{Message, plugin_value};

/// The plugin's name in `SummaryMetadata.plugin_data`.
pub const PLUGIN_NAME: &str = "hparams";
/// Tag of the `Experiment` summary.
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// Tag of the `SessionStartInfo` summary.
pub const SESSION_START_INFO_TAG: &str = "_hparams_/session_start_info";
/// Tag of the `SessionEndInfo` summary.
pub const SESSION_END_INFO_TAG: &str = "_hparams_/session_end_info";

/// One hyper-parameter's value (`google.protobuf.Value`: number, string or bool).
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    /// `number_value` (`DATA_TYPE_FLOAT64`).
    Number(f64),
    /// `string_value` (`DATA_TYPE_STRING`).
    String(String),
    /// `bool_value` (`DATA_TYPE_BOOL`). PyTorch's `hparams()` tests `int` before `bool`, so it
    /// writes Python bools as numbers 0/1; kiln writes them as bools, as tensorboard's own
    /// `hparams` API does.
    Bool(bool),
}

impl HParamValue {
    /// `HParamInfo.type`: `DATA_TYPE_STRING` = 1, `DATA_TYPE_BOOL` = 2, `DATA_TYPE_FLOAT64` = 3.
    fn data_type(&self) -> u64 {
        match self {
            HParamValue::String(_) => 1,
            HParamValue::Bool(_) => 2,
            HParamValue::Number(_) => 3,
        }
    }

    /// `google.protobuf.Value { number_value = 2, string_value = 3, bool_value = 4 }` (a oneof:
    /// written even when zero, empty or false).
    fn encode(&self) -> Message {
        match self {
            HParamValue::Number(x) => Message::new().double(2, *x),
            HParamValue::String(s) => Message::new().string(3, s),
            HParamValue::Bool(b) => Message::new().uint(4, u64::from(*b)),
        }
    }
}

/// Flattens a JSON value (a serialised [`crate::train::TrainConfig`]) into hyper-parameters as
/// Lightning's `TensorBoardLogger.log_hyperparams` does: nested objects joined with `/`
/// (`scheduler/kind`), numbers, strings and bools as they are, arrays as their JSON text,
/// `null` left out (as PyTorch's `hparams` skips `None`).
pub fn flatten(value: &serde_json::Value) -> Vec<(String, HParamValue)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, HParamValue)>) {
        use serde_json::Value as J;
        let value = match v {
            J::Null => return,
            J::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}/{k}")
                    };
                    walk(&key, v, out);
                }
                return;
            }
            J::Bool(b) => HParamValue::Bool(*b),
            J::Number(n) => HParamValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => HParamValue::String(s.clone()),
            J::Array(_) => HParamValue::String(v.to_string()),
        };
        out.push((prefix.to_string(), value));
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

fn plugin_data(field: u32, inner: &Message) -> Vec<u8> {
    Message::new().message(field, inner).into_bytes()
}

/// The `_hparams_/experiment` value: `Experiment { hparam_infos = 4 [{ name = 1, type = 4 }],
/// metric_infos = 5 [{ name = 1 { tag = 2 } }] }`.
pub fn experiment(hparams: &[(String, HParamValue)], metric_tags: &[&str]) -> Message {
    let mut exp = Message::new();
    for (name, v) in hparams {
        let info = Message::new().string(1, name).uint(4, v.data_type());
        exp = exp.message(4, &info);
    }
    for tag in metric_tags {
        let name = Message::new().string(2, tag);
        exp = exp.message(5, &Message::new().message(1, &name));
    }
    plugin_value(EXPERIMENT_TAG, PLUGIN_NAME, &plugin_data(2, &exp))
}

/// The `_hparams_/session_start_info` value: `SessionStartInfo { hparams = 1 map<string,
/// Value> }` (map entries `{ key = 1, value = 2 }`, in the given order).
pub fn session_start_info(hparams: &[(String, HParamValue)]) -> Message {
    let mut ssi = Message::new();
    for (name, v) in hparams {
        let entry = Message::new().string(1, name).message(2, &v.encode());
        ssi = ssi.message(1, &entry);
    }
    plugin_value(SESSION_START_INFO_TAG, PLUGIN_NAME, &plugin_data(3, &ssi))
}

/// The `_hparams_/session_end_info` value: `SessionEndInfo { status = 1 }` with
/// `STATUS_SUCCESS` (1) or `STATUS_FAILURE` (2).
pub fn session_end_info(success: bool) -> Message {
    let sei = Message::new().uint(1, if success { 1 } else { 2 });
    plugin_value(SESSION_END_INFO_TAG, PLUGIN_NAME, &plugin_data(4, &sei))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_flattens_like_lightning() {
        let v = serde_json::json!({"model": "mlp", "lr": 0.1, "drop_last": false,
            "scheduler": {"kind": "cosine", "t_max": null}, "classes": [0, 1]});
        assert_eq!(
            flatten(&v),
            vec![
                ("model".into(), HParamValue::String("mlp".into())),
                ("lr".into(), HParamValue::Number(0.1)),
                ("drop_last".into(), HParamValue::Bool(false)),
                (
                    "scheduler/kind".into(),
                    HParamValue::String("cosine".into())
                ),
                ("classes".into(), HParamValue::String("[0,1]".into())),
            ]
        );
    }
}
