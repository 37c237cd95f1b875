//! `kiln bench data` through the binary on a small folder of JPEGs: kiln's side alone, and
//! beside torchvision when `KILN_PYTHON` names a Python with torch (scripts/test.sh sets it),
//! where the last line must be the `ratio kiln/pytorch:` the benchmark promises.

use std::path::Path;
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn jpeg_folder(root: &Path) {
    for class in ["cat", "dog"] {
        let dir = root.join("train").join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..6u32 {
            let img = image::RgbImage::from_fn(48, 36, |x, y| {
                image::Rgb([
                    (x * 5 + i) as u8,
                    (y * 7) as u8,
                    if class == "cat" { 200 } else { 40 },
                ])
            });
            img.save(dir.join(format!("{i}.jpg"))).unwrap();
        }
    }
}

fn bench(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(KILN)
        .args(["bench", "data", "--data"])
        .arg(dir)
        .args([
            "--image-size",
            "24",
            "--batch-size",
            "4",
            "--repeat",
            "2",
            "--workers",
            "2",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn bench_data_measures_kiln_and_refuses_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    jpeg_folder(dir.path());
    let out = bench(dir.path(), &["--no-python"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ImageFolder of 12 images"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("kiln:") && l.contains("images/s")),
        "{text}"
    );

    let out = bench(&dir.path().join("nothing-here"), &["--no-python"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("error[K"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bench_data_beside_torchvision_ends_with_the_ratio() {
    let Some(py) = std::env::var_os("KILN_PYTHON") else {
        eprintln!("skipped: KILN_PYTHON is not set (scripts/test.sh sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    jpeg_folder(dir.path());
    let out = bench(dir.path(), &["--python", py.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap_or_default();
    let ratio: f64 = last
        .strip_prefix("ratio kiln/pytorch: ")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("last line is not the ratio: {text}"));
    assert!(ratio.is_finite() && ratio > 0.0, "{text}");
    assert!(text.lines().any(|l| l.starts_with("pytorch:")), "{text}");
}
