//! One test per error code of the catalogue (`kiln explain --list`): each triggers its code
//! with the bad input a user would give, through the public API or the `kiln` binary, and
//! checks the code and the values the message must carry. `every_code_has_a_test` keeps this
//! file and the catalogue in step.

use candle_core::{DType, Device, Tensor};
use kiln::data::{DataLoader, Dataset, TensorDataset};
use kiln::io::{LoadOptions, Value};
use kiln::models::{LeNet, LeNetConfig};
use kiln::nn::layers::Conv2dConfig;
use kiln::nn::{BatchNorm, Conv2d, Linear, Module, ModuleSpec};
use kiln::optim::{Grads, GroupSpec, Optimizer, Sgd, SgdConfig};
use kiln::{Error, Param};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// The error of `r`, its code checked and every `needle` found in its message.
#[track_caller]
fn expect<T>(r: kiln::Result<T>, code: &str, needles: &[&str]) -> Error {
    let e = match r {
        Ok(_) => panic!("expected {code}, got Ok"),
        Err(e) => e,
    };
    assert_eq!(e.code(), code, "{e}");
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{code}: '{n}' not in: {msg}");
    }
    assert!(!e.hint().is_empty(), "{code} has no hint");
    e
}

fn zeros(dims: &[usize], dtype: DType) -> Tensor {
    Tensor::zeros(dims, dtype, &Device::Cpu).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A PyTorch-layout zip (`archive/data.pkl`, …) holding `pickle` as its data.pkl.
fn torch_zip_with_pickle(path: &Path, pickle: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    z.start_file("archive/byteorder", opts).unwrap();
    z.write_all(b"little").unwrap();
    z.start_file("archive/version", opts).unwrap();
    z.write_all(b"3\n").unwrap();
    z.finish().unwrap();
}

fn kiln_cli(args: &[&str]) -> (i32, String) {
    let o = Command::new(KILN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

// ------------------------------------------------------------------ K00xx: general

#[test]
fn k0001_backend_error_keeps_the_operation_and_the_source() {
    // A 1-D weight where Linear needs [out, in]: candle's error, with kiln's context.
    let r = Linear::from_tensors(zeros(&[4], DType::F32), None);
    let e = expect(r, "K0001", &["Linear weight must be 2-D"]);
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn k0002_missing_file_names_the_path() {
    let r = kiln::load("/nonexistent/dir/model.pt", &LoadOptions::new());
    expect(r, "K0002", &["/nonexistent/dir/model.pt"]);
}

#[test]
fn k0003_batch_size_zero() {
    let ds = TensorDataset::from_vec("x", vec![0.0; 6], &[2], vec![0, 1, 2]).unwrap();
    expect(DataLoader::new(Arc::new(ds), 0), "K0003", &["batch", "0"]);
}

#[test]
fn k0004_allocation_too_large_gives_the_size() {
    // A Linear layer of 2^30 x 2^30 f32 weights: 4 EiB requested; refused, not aborted.
    let r = Linear::new(1 << 30, 1 << 30, false);
    expect(r, "K0004", &["4611686018427387904 bytes", "EiB"]);
    // A size that does not even fit the address space.
    expect(
        Linear::new(1 << 33, 1 << 33, false),
        "K0004",
        &["address space"],
    );
}

#[test]
fn k0005_unsupported_device_type_in_a_file() {
    let r = kiln::io::map_location::check_location_with("mps", "mac.pt", 0);
    expect(r, "K0005", &["mps", "mac.pt", "map_location"]);
}

// ------------------------------------------------------------------ K01xx: data

#[test]
fn k0101_batch_larger_than_the_data_with_drop_last() {
    let ds = TensorDataset::from_vec("tiny", vec![0.0; 6], &[2], vec![0, 1, 2]).unwrap();
    let l = DataLoader::new(Arc::new(ds), 4).unwrap().drop_last(true);
    expect(
        l.epoch(0).map(|_| ()),
        "K0101",
        &["3 samples", "batch_size=4", "drop_last=true"],
    );
    let empty = TensorDataset::from_vec("empty", vec![], &[2], vec![]).unwrap();
    let l = DataLoader::new(Arc::new(empty), 4).unwrap();
    expect(l.epoch(0).map(|_| ()), "K0101", &["empty"]);
}

struct Ragged;
impl Dataset for Ragged {
    fn name(&self) -> String {
        "ragged".into()
    }
    fn len(&self) -> usize {
        4
    }
    fn get(&self, i: usize) -> kiln::Result<(Tensor, i64)> {
        let side = if i == 2 { 7 } else { 8 };
        Ok((zeros(&[1, side, 8], DType::F32), 0))
    }
}

#[test]
fn k0102_samples_of_different_shapes_in_one_batch() {
    let l = DataLoader::new(Arc::new(Ragged), 4).unwrap();
    expect(
        l.batch(0, 0).map(|_| ()),
        "K0102",
        &["[1, 8, 8]", "[1, 7, 8]", "equal size"],
    );
}

#[test]
fn k0103_labels_and_inputs_disagree() {
    let r = TensorDataset::from_vec("x", vec![0.0; 5], &[2], vec![0, 1]);
    expect(r, "K0103", &["x"]);
}

#[test]
fn k0104_truncated_image_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/transforms/src.png");
    let bytes = std::fs::read(src).unwrap();
    let p = write(dir.path(), "cut.png", &bytes[..bytes.len() / 3]);
    let r = kiln::data::sources::decode_image(&p, false, Default::default());
    expect(r, "K0104", &["cut.png"]);
}

#[test]
fn k0105_image_declaring_100000_by_100000_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    png.extend_from_slice(&0u32.to_be_bytes()); // an empty IDAT ends the header chunks
    png.extend_from_slice(b"IDAT");
    png.extend_from_slice(&crc32fast::hash(b"IDAT").to_be_bytes());
    let p = write(dir.path(), "bomb.png", &png);
    let r = kiln::data::sources::decode_image(&p, false, Default::default());
    expect(r, "K0105", &["bomb.png", "100000x100000"]);
}

#[test]
fn k0106_bad_csv_cell_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.csv", b"x,y,target\n1,2,a\n3,four,b\n");
    let r = kiln::data::sources::open(&p, &Default::default());
    expect(r, "K0106", &["line 3", "column 2", "'y'", "four"]);
}

#[test]
fn k0107_idx_dims_longer_than_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = vec![0, 0, 8, 3];
    for d in [60_000u32, 28, 28] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend_from_slice(&[0; 784]);
    let p = write(dir.path(), "train-images-idx3-ubyte", &idx);
    let r = kiln::data::sources::idx::read_idx(&p, 3);
    expect(r, "K0107", &["[60000, 28, 28]", "47040000", "784"]);
}

#[test]
fn k0108_panicking_data_set_in_a_worker() {
    struct Boom;
    impl Dataset for Boom {
        fn name(&self) -> String {
            "boom".into()
        }
        fn len(&self) -> usize {
            4
        }
        fn get(&self, _i: usize) -> kiln::Result<(Tensor, i64)> {
            panic!("decoder bug")
        }
    }
    let l = DataLoader::new(Arc::new(Boom), 2).unwrap().workers(2);
    let first = l.epoch(0).unwrap().next().unwrap();
    expect(first, "K0108", &["batch 0", "decoder bug"]);
}

// ------------------------------------------------------------------ K02xx: shapes and targets

#[test]
fn k0201_conv_channels() {
    let conv = Conv2d::new(3, 8, 3, Conv2dConfig::default()).unwrap();
    let r = conv.forward(&zeros(&[2, 1, 8, 8], DType::F32));
    expect(r, "K0201", &["3", "1", "[2, 1, 8, 8]"]);
}

#[test]
fn k0202_linear_in_features_gives_the_flattened_size() {
    let fc = Linear::new(100, 10, true).unwrap();
    let r = fc.forward(&zeros(&[4, 64], DType::F32));
    let e = expect(r, "K0202", &["64", "100"]);
    assert!(e.hint().contains("64"), "{}", e.hint());
}

#[test]
fn k0203_input_rank() {
    let conv = Conv2d::new(1, 4, 3, Conv2dConfig::default()).unwrap();
    let r = conv.forward(&zeros(&[8, 8], DType::F32));
    expect(r, "K0203", &["[8, 8]"]);
}

#[test]
fn k0204_batchnorm_one_value_per_channel_in_training() {
    let bn = BatchNorm::new_1d(4).unwrap();
    bn.train(true);
    let r = bn.forward(&zeros(&[1, 4], DType::F32));
    expect(
        r,
        "K0204",
        &["Expected more than 1 value per channel", "[1, 4]"],
    );
    bn.train(false);
    assert!(bn.forward(&zeros(&[1, 4], DType::F32)).is_ok());
}

#[test]
fn k0205_labels_out_of_bounds_starting_at_one_and_sparse() {
    let logits = zeros(&[3, 5], DType::F32);
    let t = Tensor::new(&[1i64, 3, 5], &Device::Cpu).unwrap();
    expect(
        kiln::nn::loss::cross_entropy(&logits, &t),
        "K0205",
        &["Target 5 is out of bounds", "start at 1"],
    );
    let t = Tensor::new(&[0i64, 7, -1], &Device::Cpu).unwrap();
    expect(
        kiln::nn::loss::cross_entropy(&logits, &t),
        "K0205",
        &["out of bounds"],
    );
}

#[test]
fn k0206_one_hot_or_column_targets() {
    let logits = zeros(&[4, 3], DType::F32);
    expect(
        kiln::nn::loss::cross_entropy(&logits, &zeros(&[4, 3], DType::I64)),
        "K0206",
        &["multi-target not supported", "[4, 3]"],
    );
    expect(
        kiln::nn::loss::cross_entropy(&logits, &zeros(&[4, 1], DType::I64)),
        "K0206",
        &["[4, 1]"],
    );
}

#[test]
fn k0208_layernorm_input_of_another_trailing_shape() {
    let ln = kiln::nn::LayerNorm::new(&[8]).unwrap();
    expect(
        ln.forward(&zeros(&[2, 6], DType::F32)),
        "K0208",
        &["8", "[2, 6]"],
    );
}

#[test]
fn k0209_embedding_id_out_of_range() {
    let emb = kiln::nn::Embedding::new(10, 4).unwrap();
    let ids = Tensor::new(&[1i64, 12, 3], &Device::Cpu).unwrap();
    expect(emb.forward(&ids), "K0209", &["12", "10"]);
}

#[test]
fn k0210_float_ids_into_an_embedding() {
    let emb = kiln::nn::Embedding::new(10, 4).unwrap();
    expect(
        emb.forward(&zeros(&[3], DType::F32)),
        "K0210",
        &["Embedding"],
    );
}

#[test]
fn k0207_backward_with_nothing_trainable() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    for p in m.parameters() {
        p.set_requires_grad(false).unwrap();
    }
    let loss = m
        .forward(&zeros(&[2, 1, 8, 8], DType::F32))
        .unwrap()
        .sum_all()
        .unwrap();
    expect(
        Grads::backward(&loss, &m.parameters()),
        "K0207",
        &["requires"],
    );
}

// ------------------------------------------------------------------ K03xx: devices and dtypes

#[test]
fn k0301_input_and_weights_on_different_devices() {
    // With a GPU: a CPU layer fed a CUDA batch. Without one: the same check, fed the
    // placements such a model and batch have.
    if kiln::device::cuda::is_available() {
        let fc = Linear::new(4, 2, true).unwrap();
        let x = Tensor::zeros((1, 4), DType::F32, &kiln::device::cuda::device(0).unwrap()).unwrap();
        expect(fc.forward(&x), "K0301", &["cuda:0", "cpu"]);
    } else {
        // The check every layer runs before computing, fed the placement a CUDA model and a
        // CPU batch have.
        use candle_core::DeviceLocation;
        let r = kiln::nn::layers::check_placement(
            "fc: Linear(in_features=4, out_features=2, bias=True)",
            (&DeviceLocation::Cuda { gpu_id: 0 }, DType::F32),
            (&DeviceLocation::Cpu, DType::F32),
        );
        let e = expect(r, "K0301", &["cuda:0", "cpu", "fc: Linear"]);
        assert!(e.hint().contains("to_device"), "{}", e.hint());
    }
}

#[test]
fn k0302_f64_data_into_an_f32_model() {
    let fc = Linear::new(4, 2, true).unwrap();
    let r = fc.forward(&zeros(&[3, 4], DType::F64));
    let e = expect(
        r,
        "K0302",
        &["Found dtype Double (f64) but expected Float (f32)"],
    );
    assert!(e.hint().contains("to_dtype"), "{}", e.hint());
}

#[test]
fn k0303_cuda_requested_without_cuda() {
    if kiln::device::cuda::is_available() {
        return;
    }
    expect(kiln::device::cuda::device(0), "K0303", &["cuda:0"]);
    let (rc, err) = kiln_cli(&["train", "--device", "cuda", "--epochs", "1", "--quiet"]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("error[K0303]") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn k0304_device_index_that_does_not_exist() {
    let r = kiln::io::map_location::check_location_with("cuda:3", "ckpt.pt", 2);
    expect(r, "K0304", &["cuda:3", "2 CUDA device(s)", "map_location"]);
}

#[test]
fn k0305_unparsable_device() {
    expect(
        kiln::train::parse_device("gpu0"),
        "K0305",
        &["gpu0", "cuda:N"],
    );
}

#[test]
fn k0306_attribute_of_the_wrapped_model() {
    let dp = kiln::parallel::DataParallel::new(
        Box::new(LeNet::new(LeNetConfig::default()).unwrap()),
        &["cpu"],
        None,
    )
    .unwrap();
    let e = expect(dp.get_submodule("fc").map(|_| ()), "K0306", &["fc"]);
    assert!(e.hint().contains("module()"), "{}", e.hint());
}

// ------------------------------------------------------------------ K04xx: keys and models

#[test]
fn k0401_missing_unexpected_and_module_prefix() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let prefixed = m.state_dict().add_prefix("module.");
    let e = expect(
        m.load_state_dict(&prefixed, true).map(|_| ()),
        "K0401",
        &[
            "Error(s) in loading state_dict for LeNet",
            "Missing key(s)",
            "Unexpected key(s)",
            "module.",
        ],
    );
    assert!(
        e.to_string().contains("DataParallel") || e.hint().contains("DataParallel"),
        "{e} / {}",
        e.hint()
    );
}

#[test]
fn k0402_pattern_invalid_or_matching_nothing() {
    expect(kiln::finetune::Selector::new(&["^fc("]), "K0402", &["^fc("]);
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    let s = kiln::finetune::Selector::new(&["layer4.*"]).unwrap();
    expect(s.select(&names), "K0402", &["layer4.*", "matches"]);
}

#[test]
fn k0403_whole_model_file_with_unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("net.pt");
    let spec = serde_json::to_string(&ModuleSpec::new("Net")).unwrap();
    let v = Value::dict([
        ("kiln_format", Value::Str("whole-model".into())),
        ("format_version", Value::Int(1)),
        ("spec", Value::Str(spec)),
        ("state_dict", Value::dict(Vec::<(String, Value)>::new())),
    ]);
    kiln::save(&v, &p).unwrap();
    let e = expect(
        kiln::io::load_model(&p, &LoadOptions::new()).map(|_| ()),
        "K0403",
        &["Net", "LeNet"],
    );
    assert!(e.hint().contains("register"), "{}", e.hint());
}

#[test]
fn k0408_frozen_parameter_not_loaded_from_the_pretrained_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pre.safetensors");
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    // The file lacks conv1.weight: freezing conv1 would freeze a random filter bank.
    let sd = m.state_dict().filter(|k| k != "conv1.weight");
    kiln::train::save::save_state_dict(&sd, &p).unwrap();
    let fresh = LeNet::new(LeNetConfig::default()).unwrap();
    let mut cfg = kiln::finetune::FinetuneConfig {
        from: Some(p),
        freeze: vec!["conv1".into()],
        ..Default::default()
    };
    let e = expect(
        kiln::finetune::prepare(&fresh, &cfg, 0.01).map(|_| ()),
        "K0408",
        &["conv1.weight", "not loaded", "random"],
    );
    assert!(!e.to_string().contains("head"), "{e}");
    assert!(e.hint().contains("--allow-frozen-random"), "{}", e.hint());
    cfg.allow_frozen_random = true;
    kiln::finetune::prepare(&fresh, &cfg, 0.01).unwrap();
}

#[test]
fn k0404_no_such_submodule() {
    let mut m = LeNet::new(LeNetConfig::default()).unwrap();
    expect(
        m.get_submodule("head").map(|_| ()),
        "K0404",
        &["head", "fc"],
    );
    expect(
        kiln::finetune::replace_linear_head(&mut m, "classifier", 5).map(|_| ()),
        "K0404",
        &["classifier"],
    );
}

#[test]
fn k0405_spec_that_cannot_be_built() {
    expect(
        kiln::nn::registry::build(&ModuleSpec::new("Linear")).map(|_| ()),
        "K0405",
        &["Linear", "in_features"],
    );
}

#[derive(Module)]
struct HeadNet {
    body: Linear,
    head: Linear,
}

impl HeadNet {
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        self.head.forward(&self.body.forward(x)?)
    }
}

#[derive(Module)]
struct Forgetful {
    fc: Linear,
}

#[test]
fn k0406_typed_head_replaced_by_another_type() {
    let mut m = HeadNet {
        body: Linear::new(4, 4, true).unwrap(),
        head: Linear::new(4, 2, true).unwrap(),
    };
    let r = m
        .replace_submodule("head", Box::new(kiln::nn::ReLU))
        .map(|_| ());
    expect(r, "K0406", &["HeadNet.head", "Linear", "ReLU"]);
}

#[test]
fn k0407_derived_module_without_inherent_forward() {
    let m = Forgetful {
        fc: Linear::new(2, 2, true).unwrap(),
    };
    let x = Tensor::ones((1, 2), DType::F32, &Device::Cpu).unwrap();
    expect(Module::forward(&m, &x).map(|_| ()), "K0407", &["Forgetful"]);
}

// ------------------------------------------------------------------ K05xx: files

#[test]
fn k0501_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let full = dir.path().join("full.pt");
    kiln::io::save_state_dict(&m.state_dict(), &full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = write(dir.path(), "cut.pt", &bytes[..bytes.len() / 2]);
    expect(kiln::load(&cut, &LoadOptions::new()), "K0501", &["cut.pt"]);
}

#[test]
fn k0502_corrupted_zip_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let full = dir.path().join("full.pt");
    kiln::io::save_state_dict(&m.state_dict(), &full).unwrap();
    let mut bytes = std::fs::read(&full).unwrap();
    // Damage the central directory: overwrite its first entry's signature.
    let cd = bytes
        .windows(4)
        .rposition(|w| w == b"PK\x01\x02")
        .expect("central directory");
    let first = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .unwrap_or(cd);
    bytes[first..first + 4].copy_from_slice(b"XXXX");
    let bad = write(dir.path(), "bad.pt", &bytes);
    expect(kiln::load(&bad, &LoadOptions::new()), "K0502", &["bad.pt"]);
}

#[test]
fn k0503_not_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "notes.pt", b"epoch 3, loss 0.25\n");
    expect(
        kiln::load(&p, &LoadOptions::new()),
        "K0503",
        &["notes.pt", "text"],
    );
}

#[test]
fn k0509_pickle_naming_a_dangerous_global_even_in_structural_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.pt");
    torch_zip_with_pickle(
        &p,
        b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.",
    );
    let opts = LoadOptions {
        structural: true,
        ..LoadOptions::default()
    };
    let e = expect(
        kiln::load(&p, &opts),
        "K0509",
        &[
            "posix.system",
            "runs commands",
            "nothing in the file was run",
        ],
    );
    assert!(e.hint().contains("--globals"), "{}", e.hint());
}

#[test]
fn k0504_pickle_asking_for_an_unsafe_global() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.pt");
    torch_zip_with_pickle(
        &p,
        b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.",
    );
    let e = expect(
        kiln::load(&p, &LoadOptions::new()),
        "K0504",
        &["posix.system"],
    );
    assert!(
        e.hint().contains("weights_only") || e.hint().contains("trust"),
        "{}",
        e.hint()
    );
}

#[test]
fn k0505_malformed_pickle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pt");
    // Protocol 2 header, then an opcode that does not exist.
    torch_zip_with_pickle(&p, b"\x80\x02\xff.");
    expect(kiln::load(&p, &LoadOptions::new()), "K0505", &["junk.pt"]);
}

#[test]
fn k0506_cuda_checkpoint_without_cuda_points_to_map_location() {
    if kiln::device::cuda::is_available() {
        return;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io/cuda.pt");
    let e = expect(
        kiln::load(&p, &LoadOptions::new()),
        "K0506",
        &["cuda", "torch.cuda.is_available() is False", "map_location"],
    );
    assert!(e.to_string().contains("cuda.pt"), "{e}");
    assert!(kiln::load(&p, &LoadOptions::new().map_location("cpu")).is_ok());
}

#[test]
fn k0507_file_without_what_was_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.pt");
    kiln::save(&Value::List(vec![Value::Int(1), Value::Int(2)]), &p).unwrap();
    expect(
        kiln::io::load_state_dict_file(&p, &LoadOptions::new()).map(|_| ()),
        "K0507",
        &["list.pt"],
    );
}

#[test]
fn k0508_pickle_referencing_one_string_two_million_times() {
    // "Billion laughs": a 1 MiB str in the memo, nested in 21 tuples that each reference the
    // level below twice — 2^21 references, 2 TiB if every one were copied.
    let mut p = b"\x80\x02X\x00\x00\x10\x00".to_vec();
    p.extend(std::iter::repeat_n(b'a', 1 << 20));
    p.extend_from_slice(b"q\x00");
    for l in 1..=21u8 {
        p.extend_from_slice(&[b'h', l - 1, b'h', l - 1, 0x86, b'q', l]);
    }
    p.push(b'.');
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("laughs.pt");
    torch_zip_with_pickle(&f, &p);
    let e = expect(
        kiln::load(&f, &LoadOptions::new()),
        "K0508",
        &["laughs.pt", "64.00 MiB", "max_expanded_bytes"],
    );
    assert!(e.hint().contains("max_expanded_bytes"), "{}", e.hint());
    // The override: a budget large enough for 2^21 copies is not what anyone wants, but a
    // smaller pickle (2^5 copies = 32 MiB) passes once the budget allows it.
    let mut small = b"\x80\x02X\x00\x00\x10\x00".to_vec();
    small.extend(std::iter::repeat_n(b'a', 1 << 20));
    small.extend_from_slice(b"q\x00");
    for l in 1..=5u8 {
        small.extend_from_slice(&[b'h', l - 1, b'h', l - 1, 0x86, b'q', l]);
    }
    small.push(b'.');
    torch_zip_with_pickle(&f, &small);
    expect(
        kiln::load(&f, &LoadOptions::new().max_expanded_bytes(8 << 20)),
        "K0508",
        &["8.00 MiB"],
    );
    assert!(kiln::load(&f, &LoadOptions::new()).is_ok());
}

// ------------------------------------------------------------------ K06xx: optimizers

#[test]
fn k0601_optimizer_with_no_trainable_parameter() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    for p in m.parameters() {
        p.set_requires_grad(false).unwrap();
    }
    expect(
        Sgd::new(m.named_parameters(), SgdConfig::default()).map(|_| ()),
        "K0601",
        &["empty parameter list", "10 parameters are frozen"],
    );
}

#[test]
fn k0602_parameter_in_two_groups() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let all = m.named_parameters();
    let fc: Vec<(String, Param)> = all
        .iter()
        .filter(|(n, _)| n.starts_with("fc."))
        .cloned()
        .collect();
    let r = Sgd::with_groups(
        vec![GroupSpec::new(all).lr(0.1), GroupSpec::new(fc).lr(0.01)],
        SgdConfig::default(),
    );
    expect(r.map(|_| ()), "K0602", &["fc.weight"]);
}

#[test]
fn k0603_optimizer_state_for_another_model() {
    let a = LeNet::new(LeNetConfig::default()).unwrap();
    let b = kiln::models::Mlp::new(&kiln::models::MlpConfig::default()).unwrap();
    let cfg = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    };
    let mut oa = Sgd::new(a.named_parameters(), cfg.clone()).unwrap();
    let ob = Sgd::new(b.named_parameters(), cfg).unwrap();
    let state = ob.state_dict().unwrap();
    expect(oa.load_state_dict(&state), "K0603", &["param"]);
}

// ------------------------------------------------------------------ K07xx: checkpoints

#[test]
fn k0701_resume_last_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty");
    let (rc, err) = kiln_cli(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--quiet",
        "--resume",
        "last",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ne!(rc, 0);
    assert!(
        err.contains("error[K0701]") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn k0702_resume_with_another_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let (rc, _) = kiln_cli(&[
        "train", "--model", "mlp", "--epochs", "1", "--quiet", "--out", o,
    ]);
    assert_eq!(rc, 0);
    let (rc, err) = kiln_cli(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--quiet",
        "--batch-size",
        "64",
        "--resume",
        "last",
        "--out",
        o,
    ]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("error[K0702]") && err.contains("batch_size") && err.contains("64"),
        "{err}"
    );
}

#[test]
fn k0220_sequence_input_of_the_wrong_shape() {
    let mha = kiln::nn::MultiheadAttention::new(8, 2).unwrap();
    let e = expect(
        mha.forward(&zeros(&[5, 2, 6], DType::F32)),
        "K0220",
        &["MultiheadAttention(embed_dim=8"],
    );
    assert!(!e.to_string().contains("panicked"));
}

#[test]
fn k0703_nan_loss_names_the_step_and_the_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("run");
    let (rc, err) = kiln_cli(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--lr",
        "1e12",
        "--momentum",
        "0",
        "--scheduler",
        "none",
        "--quiet",
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("error[K0703]") && err.contains("at step") && err.contains("learning rate"),
        "{err}"
    );
    assert!(err.contains("lower the learning rate"), "{err}");
}

#[test]
fn k0704_nonfinite_gradient_norm_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("run");
    let (rc, err) = kiln_cli(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--lr",
        "1e30",
        "--clip-grad-norm",
        "1",
        "--error-if-nonfinite",
        "--on-nan",
        "continue",
        "--scheduler",
        "none",
        "--quiet",
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("error[K0704]") && err.contains("non-finite") && err.contains("at step"),
        "{err}"
    );
    assert!(err.contains("error_if_nonfinite"), "{err}");
}

// ------------------------------------------------------------------ K074x: LoRA

#[test]
fn k0741_lora_targets_matching_no_layer_name_the_patterns_and_the_layers() {
    let mut net = LeNet::new(LeNetConfig::default()).unwrap();
    let cfg = kiln::nn::lora::LoraConfig::new(4, 8.0, &["fc1", "q_proj", "v_proj"]);
    expect(
        kiln::nn::lora::apply_lora(&mut net, &cfg).map(|_| ()),
        "K0741",
        &["'q_proj', 'v_proj'", "conv1", "fc2"],
    );
    assert!(
        net.state_dict().keys().all(|k| !k.contains("lora")),
        "model unchanged"
    );
}

#[test]
fn k0742_lora_rank_zero_and_grouped_conv() {
    let mut net = LeNet::new(LeNetConfig::default()).unwrap();
    let cfg = kiln::nn::lora::LoraConfig::new(0, 8.0, &["fc1"]);
    expect(
        kiln::nn::lora::apply_lora(&mut net, &cfg).map(|_| ()),
        "K0742",
        &["rank r", "0"],
    );
    let dw = Conv2d::new(
        4,
        4,
        3,
        Conv2dConfig {
            groups: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = kiln::nn::lora::LoraConfig::new(2, 8.0, &["dw"]);
    expect(
        kiln::nn::lora::LoraLayer::wrap("dw", Box::new(dw), &cfg).map(|_| ()),
        "K0742",
        &["dw", "groups=4"],
    );
}

#[test]
fn k0743_adapter_of_another_peft_type_or_shape() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("adapter_config.json"),
        r#"{"peft_type": "IA3", "r": 8, "target_modules": ["fc1"]}"#,
    )
    .unwrap();
    expect(
        kiln::nn::lora::read_adapter_config(dir.path()).map(|_| ()),
        "K0743",
        &["IA3", "adapter_config.json"],
    );
    // A real adapter loaded into a model whose layer has another size.
    let mut net = LeNet::new(LeNetConfig::default()).unwrap();
    kiln::nn::lora::apply_lora(&mut net, &kiln::nn::lora::LoraConfig::new(2, 4.0, &["fc"]))
        .unwrap();
    let cfg = kiln::nn::lora::LoraConfig::new(2, 4.0, &["fc"]);
    kiln::nn::lora::save_adapter(&net, &cfg, dir.path(), None).unwrap();
    let mut other = LeNet::new(LeNetConfig {
        num_classes: 3,
        ..Default::default()
    })
    .unwrap();
    expect(
        kiln::nn::lora::load_adapter(&mut other, dir.path()).map(|_| ()),
        "K0743",
        &["fc.lora_B.weight", "[10, 2]", "[3, 2]"],
    );
}

#[test]
fn k0730_second_run_on_a_held_out_directory_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("run");
    // This test process holds the run lock, as a live `kiln train --out run` would.
    let lock = kiln::train::RunLock::acquire(&o).unwrap();
    let (rc, err) = kiln_cli(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_eq!(rc, 1, "{err}");
    let pid = std::process::id().to_string();
    assert!(
        err.contains("error[K0730]") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert!(
        err.contains(".kiln-run.lock") && err.contains("another --out"),
        "{err}"
    );
    assert!(
        !o.join("metrics.jsonl").exists(),
        "the refused run wrote nothing"
    );
    drop(lock);
}

// ------------------------------------------------------------------ K08xx: distributed

#[test]
fn k0801_backend_not_built_in() {
    if cfg!(feature = "mpi") {
        return;
    }
    let e = expect(
        kiln::parallel::connect("mpi").map(|_| ()),
        "K0801",
        &["mpi"],
    );
    assert!(e.hint().contains("cargo feature"), "{}", e.hint());
}

#[test]
fn k0802_ranks_that_disagree_on_the_model() {
    use kiln::parallel::{Communicator, DdpOptions, DistributedDataParallel, ThreadGroup};
    let group = ThreadGroup::new(2);
    let codes: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(rank, c)| {
                s.spawn(move || {
                    // Rank 1 builds another architecture: DDP compares them at start-up.
                    let m: Box<dyn Module> = if rank == 0 {
                        Box::new(LeNet::new(LeNetConfig::default()).unwrap())
                    } else {
                        Box::new(
                            kiln::models::Mlp::new(&kiln::models::MlpConfig::default()).unwrap(),
                        )
                    };
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    match DistributedDataParallel::new(m, comm, DdpOptions::default()) {
                        Ok(_) => "ok".to_string(),
                        Err(e) => format!("{} {e}", e.code()),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in codes {
        assert!(c.starts_with("K0802") && c.contains("disagree"), "{c}");
    }
}

// ------------------------------------------------------------------ CLI behaviour

#[test]
fn cli_prints_code_message_hint_and_exits_1_or_2() {
    let (rc, err) = kiln_cli(&["inspect", "/nonexistent/x.pt"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.starts_with("error[K0002]: "), "{err}");
    assert!(
        err.contains("/nonexistent/x.pt") && err.contains("  hint: "),
        "{err}"
    );
    assert!(err.contains("kiln explain K0002"), "{err}");
    // Usage errors exit 2: an unknown flag (clap) and a bad value (kiln's K0003).
    assert_eq!(kiln_cli(&["train", "--no-such-flag"]).0, 2);
    let (rc, err) = kiln_cli(&["train", "--batch-size", "0", "--quiet"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("error[K0003]"), "{err}");
}

#[test]
fn cli_verbose_adds_the_source_chain() {
    let (_, plain) = kiln_cli(&["inspect", "/nonexistent/x.pt"]);
    let (_, verbose) = kiln_cli(&["--verbose", "inspect", "/nonexistent/x.pt"]);
    assert!(!plain.contains("caused by"), "{plain}");
    assert!(verbose.contains("caused by: No such file"), "{verbose}");
}

#[test]
fn explain_teaches_every_code() {
    for info in kiln::error::CATALOG {
        let o = Command::new(KILN)
            .args(["explain", info.code])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", info.code);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(info.code) && text.contains(info.hint.lines().next().unwrap_or("")),
            "{text}"
        );
    }
    assert_eq!(kiln_cli(&["explain", "K9999"]).0, 2);
}

#[test]
fn every_code_has_a_test() {
    let me = include_str!("diagnostics.rs");
    let missing: Vec<&str> = kiln::error::CATALOG
        .iter()
        .map(|i| i.code)
        .filter(|c| !me.contains(&format!("fn {}_", c.to_lowercase())))
        .collect();
    assert!(missing.is_empty(), "codes without a test here: {missing:?}");
}
