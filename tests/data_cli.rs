//! `kiln train --data` through the binary on each committed data fixture written by the real
//! Python tools (`scripts/gen_transform_fixtures.py`: a PIL-written image folder with PNG,
//! JPEG and BMP files, CSVs written by Python's csv module, MNIST IDX files raw and gzip'd,
//! CIFAR-10 python-pickle and binary batches, CIFAR-100, `torch.save`d tensors). Each run
//! must finish, record `test_acc` in `metrics.jsonl` and size the model from the data.

use std::path::{Path, PathBuf};
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(name)
        .display()
        .to_string()
}

/// Runs `kiln train --data DATA ARGS… -o OUT` and returns the run directory.
fn train(tmp: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = tmp.join(name.replace('/', "_"));
    let o = out.display().to_string();
    let data = fixture(name);
    let mut all = vec![
        "train",
        "--data",
        data.as_str(),
        "--epochs",
        "1",
        "-q",
        "-o",
        &o,
    ];
    all.extend_from_slice(args);
    let run = Command::new(KILN).args(&all).output().unwrap();
    assert!(
        run.status.success(),
        "kiln {all:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// The `test_acc` values of `metrics.jsonl` (the evaluation split's accuracy).
fn test_acc(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|j| j.get("test_acc").and_then(|v| v.as_f64()))
        .collect()
}

/// `(name, shape)` of the model's tensors, from the run's `model.safetensors`.
fn shapes(run: &Path) -> Vec<(String, Vec<usize>)> {
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect()
}

fn shape_of(run: &Path, key: &str) -> Vec<usize> {
    shapes(run)
        .into_iter()
        .find(|(n, _)| n == key)
        .unwrap_or_else(|| panic!("{key} not in {}", run.display()))
        .1
}

#[test]
fn train_on_every_python_written_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // PIL image folder (train/ + val/, three classes): resnet18 at 32², classes from the data.
    let run = train(
        t,
        "imagefolder",
        &["--model", "resnet18", "--image-size", "32", "-b", "4"],
    );
    assert_eq!(shape_of(&run, "fc.weight"), [3, 512]);
    assert_eq!(shape_of(&run, "conv1.weight")[1], 3);
    assert!(!test_acc(&run).is_empty(), "test_acc recorded");

    // MNIST IDX (train gzip'd, t10k raw): LeNet with one channel.
    let run = train(t, "mnist", &["--model", "lenet"]);
    assert_eq!(shape_of(&run, "conv1.weight")[1], 1);
    assert!(!test_acc(&run).is_empty());

    // CIFAR-10 python-pickle and binary batches, CIFAR-100: three channels, 10 / 100 classes.
    for (dir, classes) in [
        ("cifar-10-batches-py", 10),
        ("cifar-10-batches-bin", 10),
        ("cifar-100-python", 100),
    ] {
        let run = train(t, dir, &["--model", "lenet"]);
        assert_eq!(shape_of(&run, "conv1.weight")[1], 3, "{dir}");
        assert_eq!(shape_of(&run, "fc.weight")[0], classes, "{dir}");
        assert!(!test_acc(&run).is_empty(), "{dir}");
    }

    // CSV with a string label column: classes in sorted order.
    let run = train(t, "table.csv", &["--target", "target", "--model", "mlp"]);
    assert!(!test_acc(&run).is_empty());

    // torch.save'd tensors (inputs + labels).
    let run = train(t, "tensors_cls.pt", &["--model", "mlp"]);
    assert!(!test_acc(&run).is_empty());
}
