//! `kiln finetune` / `kiln train` on data sources through the binary: a tiny image folder
//! (train/ + val/, two separable classes as PNG and JPEG) fine-tuned from a resnet18 state
//! dict with a frozen backbone (frozen tensors bit-identical, classes from the data),
//! parameter groups, crash + resume with workers and augmentation bit-identical to the
//! uninterrupted run; MNIST IDX files with LeNet; a CSV with a string label column.

use std::path::{Path, PathBuf};
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// `DIR/{train,val}/{red,blue}/*.{png,jpg}`: reddish vs bluish 20×20 images with noise.
fn image_folder(root: &Path, train: usize, val: usize) {
    let mut state = 12345u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        ((state >> 16) % 60) as u8
    };
    for (split, n) in [("train", train), ("val", val)] {
        for class in ["blue", "red"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(20, 20, |_, _| {
                    let (hi, lo) = (190 + noise(), noise());
                    if class == "red" {
                        image::Rgb([hi, lo, lo])
                    } else {
                        image::Rgb([lo, lo, hi])
                    }
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(dir.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
}

/// A resnet18 state dict written by kiln (ImageNet's 1000 classes, 3 channels).
fn pretrained(path: &Path) {
    kiln::rng::manual_seed(7);
    let m = kiln::models::build("resnet18", 1000, 3, 32).unwrap();
    kiln::train::save::save_state_dict(&m.state_dict(), path).unwrap();
}

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(KILN).args(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(name, shape, bytes)` of every tensor of a safetensors file.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort();
    v
}

fn last_test_acc(out: &Path) -> f64 {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["test_acc"].as_f64().unwrap()
}

fn is_frozen(name: &str, patterns: &[&str]) -> bool {
    let param = name.ends_with(".weight") || name.ends_with(".bias");
    param && patterns.iter().any(|p| name.starts_with(p))
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: String,
    pre: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    image_folder(&root.join("imgs"), 40, 8);
    pretrained(&root.join("pre.safetensors"));
    Setup {
        data: root.join("imgs").display().to_string(),
        pre: root.join("pre.safetensors").display().to_string(),
        root,
        _tmp: tmp,
    }
}

fn finetune_args<'a>(s: &'a Setup, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "finetune",
        "--from",
        &s.pre,
        "--model",
        "resnet18",
        "--data",
        &s.data,
        "--image-size",
        "32",
        "--workers",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "-q",
        "-o",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn finetune_on_an_image_folder_with_a_frozen_backbone() {
    let s = setup();
    let out = s.root.join("frozen");
    let o = out.display().to_string();
    ok(&finetune_args(
        &s,
        &o,
        // No --bn-eval: by default the frozen BatchNorms stay in eval mode and normalise
        // with the file's statistics in training as in evaluation (2 epochs of 3 steps would
        // not settle running stats), and their running statistics stay bit-identical.
        &["--freeze", "conv1", "--freeze", "bn1", "--freeze", "layer*"],
    ));
    let acc = last_test_acc(&out);
    assert!(acc >= 0.85, "test accuracy {acc} on separable data");
    let pre = tensors(&s.root.join("pre.safetensors"));
    let got = tensors(&out.join("model.safetensors"));
    let fc = got.iter().find(|t| t.0 == "fc.weight").unwrap();
    assert_eq!(fc.1, [2, 512], "num_classes from the data");
    let mut frozen = 0;
    for (name, shape, bytes) in &pre {
        if is_frozen(name, &["conv1", "bn1", "layer"]) {
            let g = got.iter().find(|t| &t.0 == name).unwrap();
            assert_eq!(
                (&g.1, &g.2),
                (shape, bytes),
                "{name} must stay bit-identical"
            );
            frozen += 1;
        }
    }
    assert!(frozen > 40, "{frozen} frozen tensors checked");

    // Parameter groups: the layers train with their own small rate, conv1/bn1 stay frozen.
    let out = s.root.join("groups");
    let o = out.display().to_string();
    ok(&finetune_args(
        &s,
        &o,
        &[
            "--freeze",
            "conv1",
            "--freeze",
            "bn1",
            "--group",
            "layer*=0.001",
        ],
    ));
    let got = tensors(&out.join("model.safetensors"));
    let same = |name: &str| {
        let a = pre.iter().find(|t| t.0 == name).unwrap();
        let b = got.iter().find(|t| t.0 == name).unwrap();
        a.2 == b.2
    };
    assert!(same("conv1.weight") && same("bn1.weight"));
    assert!(!same("layer1.0.conv1.weight"), "layer* trains in its group");
    let acc = last_test_acc(&out);
    assert!(acc >= 0.85, "groups: test accuracy {acc}");
}

#[test]
fn crash_and_resume_with_workers_and_augmentation_is_bit_exact() {
    let s = setup();
    let ck = [
        "--checkpoint-every-steps",
        "1",
        "--freeze",
        "conv1",
        "--freeze",
        "bn1",
    ];
    let full = s.root.join("full");
    let f = full.display().to_string();
    ok(&finetune_args(&s, &f, &ck));
    let run = s.root.join("crashed");
    let r = run.display().to_string();
    let mut first = finetune_args(&s, &r, &ck);
    first.extend_from_slice(&["--crash-after-steps", "13"]);
    assert!(!kiln(&first).status.success(), "the crash run must die");
    let mut again = finetune_args(&s, &r, &ck);
    again.extend_from_slice(&["--resume", "last"]);
    ok(&again);
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(run.join("model.safetensors")).unwrap(),
        "resumed model must be bit-identical to the uninterrupted one"
    );
}

fn idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn train_on_mnist_idx_files_with_lenet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", 40u32), ("t10k", 10)] {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let label = (i % 2) as u8;
            labels.push(label);
            for y in 0..28 {
                for x in 0..28 {
                    // 0: a vertical bar, 1: a horizontal bar.
                    let on = if label == 0 {
                        (12..16).contains(&x)
                    } else {
                        (12..16).contains(&y)
                    };
                    pixels.push(if on { 255 } else { 0 });
                }
            }
        }
        idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte")),
            0x803,
            &[n, 28, 28],
            &pixels,
        );
        idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte")),
            0x801,
            &[n],
            &labels,
        );
    }
    let out = tmp.path().join("run");
    let (d, o) = (dir.display().to_string(), out.display().to_string());
    ok(&[
        "train", "--data", &d, "--model", "lenet", "--epochs", "1", "-q", "-o", &o,
    ]);
    let got = tensors(&out.join("model.safetensors"));
    let conv1 = got.iter().find(|t| t.0 == "conv1.weight").unwrap();
    assert_eq!(conv1.1[1], 1, "one input channel from the data");
    assert!(out.join("metrics.jsonl").exists());
}

#[test]
fn train_on_a_csv_with_a_string_label_column() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("pets.csv");
    let mut text = String::from("weight,height,label\n");
    for i in 0..60 {
        let cat = i % 2 == 0;
        let w = if cat { 1.0 } else { -1.0 } + (i as f64) * 0.001;
        text.push_str(&format!(
            "{w},{},{}\n",
            0.5 - w,
            if cat { "cat" } else { "dog" }
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let out = tmp.path().join("run");
    let (c, o) = (csv.display().to_string(), out.display().to_string());
    ok(&[
        "train", "--data", &c, "--target", "label", "--model", "mlp", "--epochs", "5", "-q", "-o",
        &o,
    ]);
    assert!(last_test_acc(&out) >= 0.9, "{}", last_test_acc(&out));
    let got = tensors(&out.join("model.safetensors"));
    let last = got
        .iter()
        .filter(|t| t.0.ends_with(".weight"))
        .map(|t| t.1.clone())
        .collect::<Vec<_>>();
    assert!(last.iter().any(|s| s[0] == 2), "two classes: {last:?}");
}
