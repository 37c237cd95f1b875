//! TensorBoard event files: kiln's encoder against a file written by real
//! `torch.utils.tensorboard` (tests/fixtures/tensorboard, scripts/gen_tensorboard_fixture.py),
//! and `kiln train --tensorboard` end to end: the scalars equal `metrics.jsonl`, read back with
//! kiln's reader (CRCs checked) and, when `KILN_PYTHON` is set (scripts/test.sh sets it), with
//! the real tensorboard package's `EventAccumulator` (scripts/tb_read.py).

use kiln::train::tensorboard::hparams::{self, HParamValue};
use kiln::train::tensorboard::{SummaryValue, event_files, proto, read_events, record};
use kiln::train::{EpochMetrics, MetricsLog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensorboard")
}

#[test]
fn torch_summary_writer_file_is_reencoded_byte_for_byte() {
    let dir = fixture_dir();
    let bytes = std::fs::read(dir.join("torch.tfevents")).unwrap();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("torch.json")).unwrap()).unwrap();
    let records = record::split_records(&bytes, "torch.tfevents").unwrap();
    // Framing: kiln frames each record's data into exactly torch's bytes.
    let reframed: Vec<u8> = records.iter().flat_map(|r| record::frame(r)).collect();
    assert_eq!(reframed, bytes);

    let events: Vec<proto::Event> = records
        .iter()
        .map(|r| proto::decode_event(r, "torch.tfevents").unwrap())
        .collect();
    let scalars = spec["scalars"].as_array().unwrap();
    assert_eq!(events.len(), 1 + scalars.len() + 3);

    // The file-version event.
    let first = &events[0];
    assert_eq!(first.file_version.as_deref(), Some("brain.Event:2"));
    let writer = first.writer.as_deref().unwrap();
    assert_eq!(
        proto::file_version_event(first.wall_time, writer),
        records[0]
    );

    // add_scalar: tag, float32 value, step (0 left out).
    for (i, s) in scalars.iter().enumerate() {
        let (tag, value, step) = (
            s[0].as_str().unwrap(),
            s[1].as_f64().unwrap(),
            s[2].as_i64().unwrap(),
        );
        let e = &events[1 + i];
        assert_eq!(e.step, step);
        assert_eq!(
            e.values,
            vec![SummaryValue::Scalar {
                tag: tag.into(),
                value: value as f32
            }]
        );
        let ours =
            proto::summary_event(e.wall_time, step, &[proto::scalar_value(tag, value as f32)]);
        assert_eq!(ours, records[1 + i], "scalar event {i} ({tag} at {step})");
    }

    // summary.hparams: experiment, session start, session end.
    let hp: Vec<(String, HParamValue)> = spec["hparams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let v = match &kv[1] {
                serde_json::Value::String(s) => HParamValue::String(s.clone()),
                n => HParamValue::Number(n.as_f64().unwrap()),
            };
            (kv[0].as_str().unwrap().to_string(), v)
        })
        .collect();
    let metrics: Vec<&str> = spec["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let n = 1 + scalars.len();
    let (exp, ssi, sei) = (&events[n], &events[n + 1], &events[n + 2]);
    assert_eq!(
        proto::summary_event(exp.wall_time, 0, &[hparams::experiment(&hp, &metrics)]),
        records[n],
        "experiment"
    );
    // A protobuf map: Python writes its entries in hash order, kiln in the given order; the
    // entries are byte-identical and the messages are otherwise the same.
    let ours = proto::summary_event(ssi.wall_time, 0, &[hparams::session_start_info(&hp)]);
    assert_eq!(ours.len(), records[n + 1].len());
    assert_eq!(
        map_entries(&ours),
        map_entries(records[n + 1]),
        "session_start_info"
    );
    assert_eq!(map_entries(&ours).len(), hp.len());
    assert_eq!(
        proto::summary_event(sei.wall_time, 7, &[hparams::session_end_info(true)]),
        records[n + 2],
        "session_end_info"
    );
}

/// The sorted `SessionStartInfo.hparams` map entries (bytes) of a session-start event.
fn map_entries(event: &[u8]) -> Vec<Vec<u8>> {
    let e = proto::decode_event(event, "e").unwrap();
    let Some(SummaryValue::Plugin {
        content, plugin, ..
    }) = e.values.first()
    else {
        panic!("not a plugin summary: {e:?}");
    };
    assert_eq!(plugin, "hparams");
    let mut out = Vec::new();
    for (f, v) in proto::fields(content, "c").unwrap() {
        assert_eq!(f, 3, "HParamsPluginData.session_start_info only");
        let proto::Field::Bytes(ssi) = v else {
            panic!()
        };
        for (f, v) in proto::fields(ssi, "s").unwrap() {
            let proto::Field::Bytes(entry) = v else {
                panic!()
            };
            assert_eq!(f, 1);
            out.push(entry.to_vec());
        }
    }
    out.sort();
    out
}

/// Every scalar of every event file in `dir`, by tag, as TensorBoard shows them: files in
/// name order, a `SessionLog` START dropping what came before at its step and later.
fn scalars_of(dir: &Path) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for f in event_files(dir).unwrap() {
        for e in read_events(&f).unwrap() {
            if e.session_log == Some(1) {
                for series in out.values_mut() {
                    series.retain(|(s, _)| *s < e.step);
                }
            }
            for v in e.values {
                if let SummaryValue::Scalar { tag, value } = v {
                    out.entry(tag).or_default().push((e.step, value));
                }
            }
        }
    }
    out
}

/// The epoch-level series `metrics.jsonl` implies: `(global_step, value as f32)` per epoch.
fn expected_epoch_scalars(lines: &[EpochMetrics]) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for m in lines {
        let s = m.global_step as i64;
        for (tag, v) in [
            ("epoch", m.epoch as f64),
            ("train_loss", m.train_loss),
            ("test_loss", m.test_loss),
            ("test_acc", m.test_acc),
            ("lr", m.lr),
            ("seconds", m.seconds),
            ("train_acc", m.train_acc),
        ] {
            out.entry(tag.into()).or_default().push((s, v as f32));
        }
    }
    out
}

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(KILN)
        .args([
            "train",
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--per-class",
            "10",
            "--quiet",
            "--tensorboard",
            "--checkpoint-every-steps",
            "4",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Checks the log directory against `metrics.jsonl` with kiln's reader and, with
/// `KILN_PYTHON`, with tensorboard's `EventAccumulator`.
fn check_run(out: &Path, steps: i64, what: &str) {
    let lines = MetricsLog::read(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.len(), 3, "{what}");
    let tb = out.join("tensorboard");
    let got = scalars_of(&tb);
    let want = expected_epoch_scalars(&lines);
    for (tag, series) in &want {
        assert_eq!(got.get(tag), Some(series), "{what}: {tag}");
    }
    // Per step: the loss and the one group's learning rate at steps 1..=steps, once each.
    for tag in ["train/loss", "lr-SGD"] {
        let s: Vec<i64> = got[tag].iter().map(|(s, _)| *s).collect();
        assert_eq!(s, (1..=steps).collect::<Vec<_>>(), "{what}: {tag} steps");
    }
    // The learning rate of a step is the epoch's (the schedule steps per epoch).
    for m in &lines {
        let at = got["lr-SGD"]
            .iter()
            .find(|(s, _)| *s == m.global_step as i64)
            .unwrap();
        assert_eq!(at.1, m.lr as f32, "{what}: lr at step {}", m.global_step);
    }
    assert_eq!(
        got.len(),
        want.len() + 2,
        "{what}: tags {:?}",
        got.keys().collect::<Vec<_>>()
    );

    let Some(py) = std::env::var_os("KILN_PYTHON") else {
        eprintln!(
            "skipped the tensorboard check: KILN_PYTHON is not set (scripts/test.sh sets it)"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tb_read.py");
    let o = Command::new(py).arg(script).arg(&tb).output().unwrap();
    assert!(
        o.status.success(),
        "tb_read.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tb_scalars: BTreeMap<String, Vec<(i64, f32)>> = read["scalars"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(tag, series)| {
            let s = series
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
                .collect();
            (tag.clone(), s)
        })
        .collect();
    assert_eq!(
        tb_scalars, got,
        "{what}: EventAccumulator sees other scalars"
    );
    let hp = &read["hparams"];
    assert_eq!(hp["model"], "mlp", "{what}: {hp}");
    assert_eq!(hp["epochs"], 3.0);
    assert_eq!(hp["lr"], 0.03);
    assert_eq!(hp["optimizer"], "sgd");
    assert_eq!(hp["scheduler/kind"], "cosine");
    assert_eq!(hp["drop_last"], false);
    assert_eq!(read["torch_same_experiment"], true, "{what}");
    assert_eq!(read["torch_same_session_start"], true, "{what}");
    assert_eq!(read["session_end_status"], 1, "{what}: STATUS_SUCCESS");
}

#[test]
fn train_tensorboard_scalars_equal_metrics_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train(&out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 100 training digits / 16 = 7 steps per epoch.
    check_run(&out, 21, "straight run");
    assert_eq!(event_files(&out.join("tensorboard")).unwrap().len(), 1);
    // A fresh run in the same directory replaces the old curves.
    assert!(train(&out, &[]).status.success());
    assert_eq!(event_files(&out.join("tensorboard")).unwrap().len(), 1);
}

#[test]
fn resumed_run_appends_a_file_and_tensorboard_drops_the_replayed_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // Crash after step 10 (mid epoch 2); the last checkpoint is at step 8, so the resumed run
    // trains steps 9 and 10 again.
    let o = train(&out, &["--crash-after-steps", "10"]);
    assert!(!o.status.success(), "the crash run must die");
    let o = train(&out, &["--resume", "last"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = event_files(&out.join("tensorboard")).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let second = read_events(&files[1]).unwrap();
    assert_eq!(second[1].session_log, Some(1), "{:?}", second[1]);
    assert_eq!(second[1].step, 9);
    // The crashed file still ends on a record boundary (CRCs of everything it holds check).
    let first = read_events(&files[0]).unwrap();
    assert!(first.len() > 1);
    check_run(&out, 21, "crash and resume");
}

/// With norm clipping the total gradient norm is logged per update (`train/grad_norm`, the
/// norm before clipping, as `StepReport::grad_norm`) and per epoch (`grad_norm`, the mean that
/// `metrics.jsonl` holds).
#[test]
fn clipped_run_logs_the_gradient_norm() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train(&out, &["--clip-grad-norm", "0.5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = scalars_of(&out.join("tensorboard"));
    let steps: Vec<i64> = got["train/grad_norm"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (1..=21).collect::<Vec<_>>());
    assert!(
        got["train/grad_norm"]
            .iter()
            .all(|(_, v)| v.is_finite() && *v > 0.0)
    );
    let lines = MetricsLog::read(&out.join("metrics.jsonl")).unwrap();
    let want: Vec<(i64, f32)> = lines
        .iter()
        .map(|m| (m.global_step as i64, m.grad_norm.unwrap() as f32))
        .collect();
    assert_eq!(got["grad_norm"], want);
    // the epoch value is the mean of the epoch's per-update norms
    let first: f64 = got["train/grad_norm"][..7]
        .iter()
        .map(|(_, v)| f64::from(*v))
        .sum();
    assert!((first / 7.0 - lines[0].grad_norm.unwrap()).abs() < 1e-5);
}
