//! The data sources against files written by the real tools (PIL, Python's csv/pickle,
//! numpy, torch.save; `scripts/gen_transform_fixtures.py`) and torchvision's own readers'
//! answers, plus the bad-input errors.

use kiln::data::Dataset;
use kiln::data::Task;
use kiln::data::sources::{DataFormat, SourceOptions, detect, open};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data")
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn sum(ds: &dyn Dataset, i: usize) -> f64 {
    let (x, _) = ds.get(i).unwrap();
    x.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .sum()
}

fn labels(ds: &dyn Dataset) -> Vec<i64> {
    (0..ds.len()).map(|i| ds.label(i).unwrap()).collect()
}

#[test]
fn image_folder_matches_torchvision_classes_order_and_pixels() {
    let root = fixtures().join("imagefolder");
    let e = json("imagefolder.json");
    assert_eq!(detect(&root).unwrap(), DataFormat::ImageFolder);
    let s = open(&root, &SourceOptions::default()).unwrap();
    let classes: Vec<String> = e["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    assert_eq!(s.meta.classes, classes);
    assert_eq!(
        s.meta.class_to_idx["dog"],
        e["class_to_idx"]["dog"].as_i64().unwrap()
    );
    let want: Vec<i64> = e["train"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .collect();
    assert_eq!(labels(&*s.train), want);
    let val = s.val.expect("DIR/val is the validation split");
    assert_eq!(val.len(), e["val"].as_array().unwrap().len());
    assert!(s.test.is_none());
    let i = e["png_index"].as_u64().unwrap() as usize;
    let (x, _) = s.train.get(i).unwrap();
    let shape: Vec<usize> = e["png_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(x.dims(), shape.as_slice());
    assert!((sum(&*s.train, i) - e["png_sum"].as_f64().unwrap()).abs() < 1e-3);
    // the JPEG and BMP files decode too
    for k in 0..s.train.len() {
        assert_eq!(s.train.get(k).unwrap().0.dims()[0], 3);
    }
    // grayscale
    let g = open(
        &root,
        &SourceOptions {
            grayscale: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g.train.get(0).unwrap().0.dims()[0], 1);
    assert_eq!(g.meta.channels, 1);
}

#[test]
fn image_folder_without_splits_uses_a_seeded_val_split() {
    let root = fixtures().join("imagefolder/train");
    let opts = SourceOptions {
        val_split: 0.3,
        seed: 5,
        ..Default::default()
    };
    let a = open(&root, &opts).unwrap();
    let b = open(&root, &opts).unwrap();
    let (va, vb) = (a.val.unwrap(), b.val.unwrap());
    assert_eq!((a.train.len(), va.len()), (5, 2));
    assert_eq!(labels(&*va), labels(&*vb));
    let c = open(
        &root,
        &SourceOptions {
            val_split: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(c.val.is_none() && c.train.len() == 7);
}

#[test]
fn csv_string_labels_become_sorted_classes_and_headers_are_kept() {
    let s = open(&fixtures().join("table.csv"), &SourceOptions::default()).unwrap();
    assert_eq!(s.meta.format, DataFormat::Csv);
    assert_eq!(s.meta.classes, ["setosa", "versicolor", "virginica"]);
    assert_eq!(s.meta.feature_names, ["sepal", "petal", "width"]);
    assert_eq!(s.meta.sample_shape, [3]);
    assert_eq!(&labels(&*s.train)[..4], &[1, 0, 2, 1]);
    let (x, _) = s.train.get(2).unwrap();
    assert_eq!(x.to_vec1::<f32>().unwrap(), vec![1.0, 2.5, -1.0]);
}

#[test]
fn csv_regression_targets_are_f32() {
    let opts = SourceOptions {
        target: "y".into(),
        ..Default::default()
    };
    let s = open(&fixtures().join("regression.csv"), &opts).unwrap();
    assert_eq!(s.meta.task, Task::Regression);
    assert_eq!(s.train.task(), Task::Regression);
    let (x, y) = s.train.get_batch(&[0, 3]).unwrap();
    assert_eq!(x.dims(), &[2, 2]);
    assert_eq!(y.dtype(), candle_core::DType::F32);
    assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0.25, 1.75]);
    // through a val split (Subset) and a loader the f32 targets survive
    let s = open(
        &fixtures().join("regression.csv"),
        &SourceOptions {
            val_split: 0.2,
            ..opts
        },
    )
    .unwrap();
    let loader = kiln::data::DataLoader::new(s.train.clone(), 4)
        .unwrap()
        .shuffle(true);
    let b = loader.batch(0, 0).unwrap();
    assert_eq!(b.targets.dtype(), candle_core::DType::F32);
}

#[test]
fn mnist_idx_gz_and_raw_match_torchvision() {
    let dir = fixtures().join("mnist");
    let e = json("mnist.json");
    assert_eq!(detect(&dir).unwrap(), DataFormat::Mnist);
    let s = open(&dir, &SourceOptions::default()).unwrap();
    let want: Vec<i64> = e["train_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels(&*s.train), want);
    assert_eq!(s.train.get(3).unwrap().0.dims(), &[1, 28, 28]);
    assert!((sum(&*s.train, 3) - e["sample3_sum"].as_f64().unwrap()).abs() < 1e-2);
    let classes: Vec<String> = e["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    assert_eq!(s.meta.classes, classes);
    assert_eq!(s.test.unwrap().len(), 6);
}

fn check_cifar(dir: &Path, expect: &str, n_classes: usize) {
    let e = json(expect);
    let s = open(dir, &SourceOptions::default()).unwrap();
    assert_eq!(s.meta.classes.len(), n_classes);
    let want: Vec<i64> = e["train_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels(&*s.train), want);
    let sums = e["train_sums"].as_array().unwrap();
    for (i, want) in sums.iter().enumerate() {
        assert!(
            (sum(&*s.train, i) * 255.0 - want.as_f64().unwrap()).abs() < 0.5,
            "{i}"
        );
    }
    let test = s.test.unwrap();
    let want: Vec<i64> = e["test_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels(&*test), want);
    assert_eq!(test.get(0).unwrap().0.dims(), &[3, 32, 32]);
}

#[test]
fn cifar10_python_and_binary_batches() {
    let py = fixtures().join("cifar-10-batches-py");
    assert_eq!(detect(&py).unwrap(), DataFormat::Cifar10);
    check_cifar(&py, "cifar10.json", 10);
    let s = open(&py, &SourceOptions::default()).unwrap();
    assert_eq!(s.meta.classes[0], "airplane");
    check_cifar(&fixtures().join("cifar-10-batches-bin"), "cifar10.json", 10);
    // the parent folder works too (the archive unpacks into cifar-10-batches-py/)
}

#[test]
fn cifar100_python_batches_protocol_4_with_bytes_keys() {
    let dir = fixtures().join("cifar-100-python");
    assert_eq!(detect(&dir).unwrap(), DataFormat::Cifar100);
    check_cifar(&dir, "cifar100.json", 100);
    let s = open(&dir, &SourceOptions::default()).unwrap();
    assert_eq!(s.meta.classes[7], "class07");
}

#[test]
fn tensors_pt_files_classification_and_regression() {
    let e = json("tensors.json");
    let s = open(
        &fixtures().join("tensors_cls.pt"),
        &SourceOptions::default(),
    )
    .unwrap();
    assert_eq!(s.meta.format, DataFormat::Tensors);
    assert_eq!(s.meta.sample_shape, [2, 3]);
    assert_eq!(labels(&*s.train), vec![0, 1, 2, 0, 1, 2, 0, 1]);
    let (x, _) = s.train.get(0).unwrap();
    let want: Vec<f32> = e["inputs"].as_array().unwrap()[..6]
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
    let r = open(
        &fixtures().join("tensors_reg.pt"),
        &SourceOptions::default(),
    )
    .unwrap();
    assert_eq!(r.meta.task, Task::Regression);
    let (_, y) = r.train.get_batch(&[1, 2]).unwrap();
    assert_eq!(y.dims(), &[2, 1]);
    let want = e["reg_targets"].as_array().unwrap()[1].as_f64().unwrap() as f32;
    assert!((y.to_vec2::<f32>().unwrap()[0][0] - want).abs() < 1e-5);
}

#[test]
fn safetensors_file_written_by_kiln() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.safetensors");
    let x = candle_core::Tensor::arange(0f32, 12.0, &candle_core::Device::Cpu)
        .unwrap()
        .reshape((4, 3))
        .unwrap();
    let y = candle_core::Tensor::new(&[0i64, 1, 1, 0], &candle_core::Device::Cpu).unwrap();
    let v = kiln::io::Value::dict([
        ("inputs", kiln::io::Value::from_tensor(&x).unwrap()),
        ("labels", kiln::io::Value::from_tensor(&y).unwrap()),
    ]);
    kiln::io::save(&v, &p).unwrap();
    let s = open(
        &p,
        &SourceOptions {
            val_split: 0.25,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((s.train.len(), s.val.unwrap().len()), (3, 1));
    assert_eq!(s.meta.classes, ["0", "1"]);
}

// ------------------------------------------------------------------ bad input

fn copy_folder(tmp: &Path) -> PathBuf {
    let root = tmp.join("imgs");
    for c in ["a", "b"] {
        std::fs::create_dir_all(root.join(c)).unwrap();
        let src = fixtures().join("imagefolder/train/cat/img0.png");
        std::fs::copy(&src, root.join(c).join("ok.png")).unwrap();
    }
    root
}

#[test]
fn truncated_image_is_k0104_naming_the_file_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = copy_folder(tmp.path());
    let bytes = std::fs::read(fixtures().join("transforms/src.png")).unwrap();
    let bad = root.join("b").join("truncated.png");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let s = open(&root, &SourceOptions::default()).unwrap();
    assert_eq!(s.train.len(), 3);
    let idx = 2; // b/ok.png, b/truncated.png sorted
    let e = s.train.get(idx).unwrap_err();
    assert_eq!(e.code(), "K0104", "{e}");
    assert!(e.to_string().contains("truncated.png"), "{e}");
    // a loader surfaces it with workers too
    let l = kiln::data::DataLoader::new(s.train.clone(), 1)
        .unwrap()
        .workers(2);
    let errs: Vec<_> = l.epoch(0).unwrap().filter_map(|b| b.err()).collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].code(), "K0104");
    let s = open(
        &root,
        &SourceOptions {
            skip_bad: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((s.train.len(), s.meta.skipped), (2, 1));
    // not an image at all
    std::fs::write(root.join("a").join("zz.jpg"), b"hello").unwrap();
    let s = open(&root, &SourceOptions::default()).unwrap();
    assert_eq!(s.train.get(1).unwrap_err().code(), "K0104");
}

/// A PNG whose header declares `w × h` pixels, with no pixel data.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    // an empty IDAT: the decoder reads the header chunks up to the first IDAT
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(b"IDAT");
    v.extend_from_slice(&crc32fast::hash(b"IDAT").to_be_bytes());
    v
}

#[test]
fn huge_declared_dimensions_are_k0105_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bomb.png");
    std::fs::write(&p, png_header(100_000, 100_000)).unwrap();
    let e = kiln::data::sources::decode_image(&p, false, Default::default()).unwrap_err();
    assert_eq!(e.code(), "K0105", "{e}");
    assert!(e.to_string().contains("100000x100000"), "{e}");
}

#[test]
fn bad_csv_cell_gives_line_and_column_and_long_lines_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.csv");
    std::fs::write(&p, "a,b,target\n1,2,x\n3,oops,y\n").unwrap();
    let e = open(&p, &SourceOptions::default()).unwrap_err();
    assert_eq!(e.code(), "K0106");
    let s = e.to_string();
    assert!(
        s.contains("line 3") && s.contains("column 2") && s.contains("'b'") && s.contains("oops"),
        "{s}"
    );
    std::fs::write(&p, format!("a,target\n{},x\n", "1".repeat(100))).unwrap();
    let opts = SourceOptions {
        max_line_bytes: 50,
        ..Default::default()
    };
    let e = open(&p, &opts).unwrap_err();
    assert_eq!(e.code(), "K0106");
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("50 bytes"),
        "{e}"
    );
    std::fs::write(&p, "a,target\n1,x\n2\n").unwrap();
    assert_eq!(
        open(&p, &SourceOptions::default()).unwrap_err().code(),
        "K0106"
    );
    std::fs::write(&p, "a,label\n1,x\n").unwrap();
    assert_eq!(
        open(&p, &SourceOptions::default()).unwrap_err().code(),
        "K0103"
    );
}

#[test]
fn idx_dims_that_disagree_with_the_length_are_k0107_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixtures().join("mnist")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    // t10k images: declare 4 000 000 000 images of 28x28 in a small raw file
    let p = tmp.path().join("t10k-images-idx3-ubyte");
    let mut b = std::fs::read(&p).unwrap();
    b[4..8].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = open(tmp.path(), &SourceOptions::default()).unwrap_err();
    assert_eq!(e.code(), "K0107", "{e}");
    assert!(e.to_string().contains("4000000000"), "{e}");
    // truncated raw file
    let good = std::fs::read(fixtures().join("mnist/t10k-images-idx3-ubyte")).unwrap();
    std::fs::write(&p, &good[..good.len() - 10]).unwrap();
    assert_eq!(
        open(tmp.path(), &SourceOptions::default())
            .unwrap_err()
            .code(),
        "K0107"
    );
    // a gzip whose declared size is beyond what it can inflate to
    std::fs::write(&p, &good).unwrap();
    let gz = tmp.path().join("train-images-idx3-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut hdr = good[..16].to_vec();
    hdr[4..8].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    std::io::Write::write_all(&mut enc, &hdr).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    assert_eq!(
        open(tmp.path(), &SourceOptions::default())
            .unwrap_err()
            .code(),
        "K0107"
    );
}

#[test]
fn cifar_batch_with_a_foreign_global_is_k0107() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("data_batch_1"), b"\x80\x02cos\nsystem\nq\x00.").unwrap();
    let e = open(d, &SourceOptions::default()).unwrap_err();
    assert_eq!(e.code(), "K0107");
    assert!(e.to_string().contains("os.system"), "{e}");
    std::fs::write(d.join("data_batch_1.bin"), [0u8; 100]).unwrap();
    std::fs::remove_file(d.join("data_batch_1")).unwrap();
    assert_eq!(
        open(d, &SourceOptions::default()).unwrap_err().code(),
        "K0107"
    );
}
