//! LoRA (issue 19 item 9): parity of a LoRA Linear/Conv2d forward and backward with the
//! hand-written PyTorch twin of PEFT's layers (`scripts/gen_lora_fixtures.py`, fixtures in
//! `tests/fixtures/lora/`), and a LoRA fine-tune of the digits LeNet through the CLI: the
//! adapter directory in PEFT's layout is under 5 % of the model file, reloads, merges
//! (`kiln convert --merge-lora`) into a plain model equal to base + adapters within 1e-6, and a
//! crashed LoRA run resumes bit-exactly. Run with `--nocapture` for the measured figures.

mod common;

use candle_core::{DType, Tensor, Var};
use common::runs::assert_same_run;
use common::{Errors, get, load, values};
use kiln::Module;
use kiln::models::{LeNet, LeNetConfig};
use kiln::nn::layers::Conv2dConfig;
use kiln::nn::lora::{
    LoraConfig, LoraLayer, apply_lora, load_adapter, lora_layers, mark_only_lora_trainable,
    merge_and_unload, read_adapter_config,
};
use kiln::nn::{Conv2d, Linear};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/lora/{name}"))
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// One fixture case in `dtype`: output, gradients of `lora_A`, `lora_B` and the input,
/// no gradient for the frozen base, and the merged weight.
fn parity(case: &str, dtype: DType, tol: f64) {
    let m = manifest();
    let c = &m["cases"][case];
    let t = load(&fixture(&format!("{case}.safetensors")));
    let cast = |k: &str| get(&t, k).to_dtype(dtype).unwrap();
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let base: Box<dyn Module> = if c["kind"] == "linear" {
        Box::new(Linear::from_tensors(cast("weight"), Some(cast("bias"))).unwrap())
    } else {
        let cfg = Conv2dConfig {
            stride: u("stride"),
            padding: u("padding"),
            ..Default::default()
        };
        Box::new(Conv2d::from_tensors(cast("weight"), Some(cast("bias")), cfg).unwrap())
    };
    let cfg = LoraConfig::new(u("r"), c["alpha"].as_f64().unwrap(), &["layer"]);
    let layer = LoraLayer::wrap("layer", base, &cfg).unwrap();
    assert_eq!(layer.scaling(), c["scaling"].as_f64().unwrap());
    // A fresh adapter: lora_B is zero, lora_A Kaiming-uniform within ±1/√fan_in.
    assert!(
        values(&layer.lora_b().unwrap().detached())
            .iter()
            .all(|v| *v == 0.0)
    );
    let a0 = layer.lora_a().unwrap().detached();
    let fan_in: usize = a0.dims()[1..].iter().product();
    let bound = 1.0 / (fan_in as f64).sqrt();
    assert!(values(&a0).iter().all(|v| v.abs() <= bound));
    assert_eq!(a0.dims(), get(&t, "lora_A").dims(), "{case}: lora_A shape");
    for (_, p) in layer.base().named_parameters() {
        p.set_requires_grad(false).unwrap();
    }
    layer.lora_a().unwrap().set(&cast("lora_A")).unwrap();
    layer.lora_b().unwrap().set(&cast("lora_B")).unwrap();
    let x = Var::from_tensor(&cast("input")).unwrap();
    let out = layer.forward(x.as_tensor()).unwrap();
    let mut errs = Errors::default();
    errs.check("output", &out, get(&t, "output"));
    let loss = (&out * cast("upstream")).unwrap().sum_all().unwrap();
    let store = loss.backward().unwrap();
    let ga = layer
        .lora_a()
        .unwrap()
        .grad(&store)
        .expect("lora_A gradient");
    let gb = layer
        .lora_b()
        .unwrap()
        .grad(&store)
        .expect("lora_B gradient");
    errs.check("grad.lora_A", &ga, get(&t, "grad.lora_A"));
    errs.check("grad.lora_B", &gb, get(&t, "grad.lora_B"));
    errs.check(
        "grad.input",
        store.get(x.as_tensor()).expect("input gradient"),
        get(&t, "grad.input"),
    );
    for (n, p) in layer.base().named_parameters() {
        assert!(
            p.grad(&store).is_none(),
            "{case}: frozen base {n} got a gradient"
        );
    }
    errs.check("merged", &layer.merged_weight().unwrap(), get(&t, "merged"));
    errs.assert_below(&format!("{case} {dtype:?}"), tol);
}

#[test]
fn lora_linear_matches_the_torch_twin() {
    parity("linear", DType::F64, 1e-6);
    parity("linear", DType::F32, 1e-5);
    parity("linear_3d", DType::F64, 1e-6);
}

#[test]
fn lora_conv2d_matches_the_torch_twin() {
    parity("conv", DType::F64, 1e-6);
    parity("conv", DType::F32, 1e-5);
    parity("conv_1x1", DType::F64, 1e-6);
}

/// Dropout acts on the adapter's input only, in training mode; eval mode is the plain sum.
#[test]
fn lora_dropout_only_touches_the_adapter_path_in_training() {
    kiln::rng::manual_seed(0);
    let base = Linear::new(6, 3, true).unwrap();
    let w = base.weight().detached();
    let mut cfg = LoraConfig::new(2, 4.0, &["x"]);
    cfg.dropout = 0.5;
    let layer = LoraLayer::wrap("x", Box::new(base), &cfg).unwrap();
    let x = Tensor::ones((4, 6), DType::F32, &candle_core::Device::Cpu).unwrap();
    // lora_B = 0: output is the base's whatever the dropout draws.
    let plain = x.matmul(&w.t().unwrap()).unwrap();
    let y = layer.forward(&x).unwrap();
    let bias = layer.base().named_parameters()[1].1.detached();
    let want = plain.broadcast_add(&bias).unwrap();
    assert!(common::rel_err("zero B", &y, &want) < 1e-6);
    layer
        .lora_b()
        .unwrap()
        .set(&Tensor::ones((3, 2), DType::F32, &candle_core::Device::Cpu).unwrap())
        .unwrap();
    let train = layer.forward(&x).unwrap();
    layer.eval();
    let eval1 = layer.forward(&x).unwrap();
    let eval2 = layer.forward(&x).unwrap();
    assert_eq!(values(&eval1), values(&eval2), "eval mode draws no mask");
    assert_ne!(
        values(&train),
        values(&eval1),
        "training mode drops adapter inputs"
    );
}

#[test]
fn apply_freeze_extract_and_merge_and_unload_on_lenet() {
    kiln::rng::manual_seed(3);
    let mut net = LeNet::new(LeNetConfig::default()).unwrap();
    let before = net.state_dict();
    let mut cfg = LoraConfig::new(2, 4.0, &["conv2", "fc*"]);
    cfg.modules_to_save = vec!["fc".into()];
    let r = apply_lora(&mut net, &cfg).unwrap();
    assert_eq!(
        r.targets,
        ["conv2", "fc1", "fc2"],
        "fc is in modules_to_save"
    );
    let x = Tensor::rand(0f32, 1.0, (3, 1, 8, 8), &candle_core::Device::Cpu).unwrap();
    let frozen = mark_only_lora_trainable(&net, &cfg.modules_to_save).unwrap();
    assert!(frozen.contains(&"fc1.weight".to_string()) && !frozen.contains(&"fc.weight".into()));
    let keys: Vec<String> = net.state_dict().keys().map(str::to_string).collect();
    assert!(keys.contains(&"fc1.lora_A.weight".into()) && keys.contains(&"conv2.weight".into()));
    for l in lora_layers(&net) {
        l.1.lora_b()
            .unwrap()
            .set(&(l.1.lora_b().unwrap().detached().ones_like().unwrap() * 0.1).unwrap())
            .unwrap();
    }
    net.eval();
    let y = net.forward(&x).unwrap();
    merge_and_unload(&mut net).unwrap();
    let plain: Vec<String> = net.state_dict().keys().map(str::to_string).collect();
    let want: Vec<String> = before.keys().map(str::to_string).collect();
    assert_eq!(plain, want, "plain keys again");
    let y2 = net.forward(&x).unwrap();
    let e = common::rel_err("merged forward", &y2, &y);
    assert!(e < 1e-6, "{e}");
    // Errors: rank 0, bad dropout, no match, grouped conv.
    let mut net = LeNet::new(LeNetConfig::default()).unwrap();
    let code = |c: &LoraConfig, net: &mut LeNet| apply_lora(net, c).unwrap_err().code();
    assert_eq!(code(&LoraConfig::new(0, 8.0, &["fc1"]), &mut net), "K0742");
    let mut d = LoraConfig::new(2, 8.0, &["fc1"]);
    d.dropout = 1.0;
    assert_eq!(code(&d, &mut net), "K0742");
    assert_eq!(code(&LoraConfig::new(2, 8.0, &["attn"]), &mut net), "K0741");
    apply_lora(&mut net, &LoraConfig::new(2, 8.0, &["fc1"])).unwrap();
    let again = apply_lora(&mut net, &LoraConfig::new(2, 8.0, &["fc1"])).unwrap_err();
    assert_eq!(
        again.code(),
        "K0741",
        "an adapted layer is no candidate: {again}"
    );
}

// ------------------------------------------------------------------------ the CLI fine-tune

fn kiln(args: &[&str]) -> Output {
    Command::new(KILN).args(args).output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// LeNet pretrained on digits 0-4 (5 outputs), shared by the tests.
fn pretrained() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("pre");
        let o = kiln(&[
            "train",
            "--classes",
            "0-4",
            "--epochs",
            "3",
            "--quiet",
            "--no-checkpoint",
            "--out",
            out.to_str().unwrap(),
        ]);
        ok(&o, "pretraining");
        d
    });
    FILE.get_or_init(|| dir.path().join("pre/model.safetensors"))
}

fn lora_args<'a>(pre: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "finetune",
        "--from",
        pre,
        "--classes",
        "5-9",
        "--per-class",
        "20",
        "--epochs",
        "3",
        "--quiet",
    ];
    a.extend_from_slice(extra);
    a
}

fn sd(path: &Path) -> kiln::StateDict {
    kiln::io::load_state_dict_file(path, &kiln::io::LoadOptions::new()).unwrap()
}

/// `--keep-head`: LoRA on conv2 and every fc layer (the head included), rank 1; the adapter
/// is a few percent of the model, reloads, and merges into base + adapters.
#[test]
fn lora_finetune_of_lenet_saves_reloads_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = pretrained();
    let out = tmp.path().join("lora");
    let o = kiln(&lora_args(
        pre.to_str().unwrap(),
        &[
            "--keep-head",
            "--lora-rank",
            "1",
            "--lora-alpha",
            "2",
            "--lora-targets",
            "conv2",
            "fc*",
            "--no-checkpoint",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    ok(&o, "LoRA fine-tune");
    let adapter = out.join("adapter");
    let weights = adapter.join("adapter_model.safetensors");
    let (a_size, m_size) = (
        std::fs::metadata(&weights).unwrap().len(),
        std::fs::metadata(pre).unwrap().len(),
    );
    let share = a_size as f64 / m_size as f64;
    println!(
        "adapter {a_size} bytes, model {m_size} bytes: {:.2} %",
        100.0 * share
    );
    assert!(
        share < 0.05,
        "adapter is {:.2} % of the model",
        100.0 * share
    );
    // PEFT's layout.
    let cfg_text = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 1);
    assert_eq!(cfg["lora_alpha"], 2);
    assert_eq!(cfg["bias"], "none");
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["conv2", "fc1", "fc2", "fc"])
    );
    assert!(cfg["modules_to_save"].is_null());
    let ad = sd(&weights);
    let keys: Vec<&str> = ad.keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(keys.contains(&"base_model.model.fc1.lora_A.weight"));
    assert_eq!(
        ad.get("base_model.model.conv2.lora_A.weight")
            .unwrap()
            .dims(),
        [1, 6, 3, 3]
    );
    assert_eq!(
        ad.get("base_model.model.conv2.lora_B.weight")
            .unwrap()
            .dims(),
        [16, 1, 1, 1]
    );
    assert_eq!(
        ad.get("base_model.model.fc1.lora_B.weight").unwrap().dims(),
        [120, 1]
    );
    // The base weights did not move during the fine-tune.
    let base = sd(pre);
    let trained = sd(&out.join("model.safetensors"));
    for (k, v) in base.iter() {
        assert_eq!(
            values(v),
            values(trained.get(k).unwrap()),
            "frozen {k} changed"
        );
    }
    // Merge with the CLI.
    let merged_path = tmp.path().join("merged.safetensors");
    let o = kiln(&[
        "convert",
        pre.to_str().unwrap(),
        merged_path.to_str().unwrap(),
        "--merge-lora",
        adapter.to_str().unwrap(),
    ]);
    ok(&o, "convert --merge-lora");
    let merged = sd(&merged_path);
    assert_eq!(
        merged.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "a plain model"
    );
    let scaling = 2.0;
    let mut max_diff = 0f64;
    for layer in ["conv2", "fc1", "fc2", "fc"] {
        let w = base
            .get(&format!("{layer}.weight"))
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let a = ad
            .get(&format!("base_model.model.{layer}.lora_A.weight"))
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let b = ad
            .get(&format!("base_model.model.{layer}.lora_B.weight"))
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let out_dim = b.dims()[0];
        let delta = b
            .reshape((out_dim, 1))
            .unwrap()
            .matmul(&a.reshape((1, ())).unwrap())
            .unwrap()
            .reshape(w.dims())
            .unwrap();
        let want = (w + (delta * scaling).unwrap()).unwrap();
        let got = merged.get(&format!("{layer}.weight")).unwrap();
        let d = values(got)
            .iter()
            .zip(values(&want))
            .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        max_diff = max_diff.max(d);
    }
    println!("merged weights vs W + B·A·alpha/r: max |diff| {max_diff:.3e}");
    assert!(max_diff <= 1e-6, "{max_diff}");
    // Reload: a fresh LeNet with the base weights + load_adapter computes what the merged
    // model computes, and what the fine-tuned model (base + adapters) computes.
    let x = Tensor::rand(0f32, 16.0, (5, 1, 8, 8), &candle_core::Device::Cpu).unwrap();
    let five = LeNetConfig {
        num_classes: 5,
        ..Default::default()
    };
    let mut reloaded = LeNet::new(five).unwrap();
    reloaded.load_state_dict(&base, true).unwrap();
    let ac = load_adapter(&mut reloaded, &adapter).unwrap();
    assert_eq!(ac.lora.r, 1);
    assert_eq!(ac.base_model_name_or_path.as_deref(), pre.to_str());
    let mut full = LeNet::new(five).unwrap();
    apply_lora(&mut full, &read_adapter_config(&adapter).unwrap().lora).unwrap();
    full.load_state_dict(&trained, true).unwrap();
    let plain = LeNet::new(five).unwrap();
    plain.load_state_dict(&merged, true).unwrap();
    // In f64, so the comparison measures the merge, not f32 summation order.
    let x = x.to_dtype(DType::F64).unwrap();
    for m in [&reloaded as &dyn Module, &full, &plain] {
        m.eval();
        m.to_dtype(DType::F64).unwrap();
    }
    let (y1, y2, y3) = (
        reloaded.forward(&x).unwrap(),
        full.forward(&x).unwrap(),
        plain.forward(&x).unwrap(),
    );
    let (e1, e2) = (
        common::rel_err("reloaded", &y1, &y2),
        common::rel_err("merged", &y3, &y2),
    );
    println!("forward: reloaded adapter {e1:.3e}, merged model {e2:.3e} (relative)");
    assert!(e1 == 0.0, "reloaded adapter differs: {e1}");
    assert!(e2 < 1e-6, "merged model differs: {e2}");
}

/// Without `--keep-head` the new 5-class head trains in full and is saved with the adapter
/// (PEFT's modules_to_save), so the merged model carries it.
#[test]
fn lora_with_a_new_head_saves_it_as_modules_to_save() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = pretrained();
    let out = tmp.path().join("lora-head");
    let o = kiln(&lora_args(
        pre.to_str().unwrap(),
        &[
            "--lora-rank",
            "1",
            "--lora-targets",
            "fc1",
            "--lora-dropout",
            "0.1",
            "--no-checkpoint",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    ok(&o, "LoRA fine-tune with a new head");
    let adapter = out.join("adapter");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["modules_to_save"], serde_json::json!(["fc"]));
    assert_eq!(cfg["lora_dropout"], 0.1);
    let weights = adapter.join("adapter_model.safetensors");
    let ad = sd(&weights);
    assert!(ad.get("base_model.model.fc.weight").is_some());
    let share = std::fs::metadata(&weights).unwrap().len() as f64
        / std::fs::metadata(pre).unwrap().len() as f64;
    println!("adapter with the head: {:.2} % of the model", 100.0 * share);
    assert!(share < 0.05);
    let merged_path = tmp.path().join("merged.pt");
    ok(
        &kiln(&[
            "convert",
            pre.to_str().unwrap(),
            merged_path.to_str().unwrap(),
            "--merge-lora",
            adapter.to_str().unwrap(),
        ]),
        "merge",
    );
    let merged = sd(&merged_path);
    let trained = sd(&out.join("model.safetensors"));
    assert_eq!(
        values(merged.get("fc.weight").unwrap()),
        values(trained.get("fc.weight").unwrap()),
        "the trained head"
    );
}

/// A LoRA fine-tune crashed mid-epoch and resumed ends bit-identical to the straight run
/// (adapter weights, optimizer state, dropout draws).
#[test]
fn lora_finetune_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = pretrained().to_str().unwrap().to_string();
    let run = |out: &Path, extra: &[&str]| {
        let mut e = vec![
            "--lora-rank",
            "2",
            "--lora-targets",
            "conv2",
            "fc1",
            "--lora-dropout",
            "0.2",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--checkpoint-every-steps",
            "4",
            "--out",
            out.to_str().unwrap(),
        ];
        e.extend_from_slice(extra);
        kiln(&lora_args(&pre, &e))
    };
    let straight = tmp.path().join("straight");
    ok(&run(&straight, &[]), "straight run");
    let crashed = tmp.path().join("crashed");
    assert!(
        !run(&crashed, &["--crash-after-steps", "10"])
            .status
            .success()
    );
    ok(&run(&crashed, &["--resume", "last"]), "resume");
    assert_same_run(&straight, &crashed, "LoRA, crash after step 10");
    let a = std::fs::read(straight.join("adapter/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(crashed.join("adapter/adapter_model.safetensors")).unwrap();
    assert!(a == b, "adapter files differ");
}

/// CLI errors: a pattern matching nothing names it and lists layers; rank 0 is refused.
#[test]
fn lora_cli_errors_are_coded() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = pretrained().to_str().unwrap().to_string();
    let out = tmp.path().join("bad");
    let o = kiln(&lora_args(
        &pre,
        &[
            "--lora-rank",
            "2",
            "--lora-targets",
            "attn",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("K0741") && err.contains("'attn'") && err.contains("fc1"),
        "{err}"
    );
    let o = kiln(&lora_args(
        &pre,
        &[
            "--lora-rank",
            "0",
            "--lora-targets",
            "fc1",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    assert!(String::from_utf8_lossy(&o.stderr).contains("K0742"));
}

/// An adapter written by Python in PEFT's layout (PEFT 0.13's config fields, keys with
/// `base_model.model.`, targets in set order, the head as modules_to_save) loads into kiln's
/// LeNet and computes what the torch twin computes; merging it gives torch's merged weights.
#[test]
fn a_python_written_peft_adapter_loads_and_merges_like_torch() {
    let base = sd(&fixture("lenet_base.safetensors"));
    let io = load(&fixture("lenet_io.safetensors"));
    let dir = fixture("lenet_adapter");
    let mut net = LeNet::new(LeNetConfig {
        num_classes: 5,
        ..Default::default()
    })
    .unwrap();
    net.load_state_dict(&base, true).unwrap();
    let cfg = load_adapter(&mut net, &dir).unwrap();
    assert_eq!(
        (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout),
        (2, 6.0, 0.1)
    );
    assert_eq!(cfg.lora.modules_to_save, ["fc"]);
    let layers: Vec<String> = lora_layers(&net).into_iter().map(|(n, _)| n).collect();
    assert_eq!(layers, ["conv2", "fc1", "fc2"]);
    net.eval();
    let y = net.forward(get(&io, "input")).unwrap();
    let mut errs = Errors::default();
    errs.check("output", &y, get(&io, "output"));
    let (merged, report) = kiln::nn::lora::merge_adapter(&base, &dir).unwrap();
    assert_eq!(report.merged, ["conv2", "fc1", "fc2"]);
    let mut replaced = report.replaced.clone();
    replaced.sort();
    assert_eq!(replaced, ["fc.bias", "fc.weight"]);
    for k in ["conv2.weight", "fc1.weight", "fc2.weight", "fc.weight"] {
        errs.check(k, merged.get(k).unwrap(), get(&io, &format!("merged.{k}")));
    }
    errs.assert_below("python-written PEFT adapter", 1e-6);
    // kiln writes the same layout back: same keys and config fields.
    let tmp = tempfile::tempdir().unwrap();
    kiln::nn::lora::save_adapter(&net, &cfg.lora, tmp.path(), Some("lenet-digits")).unwrap();
    let ours: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    let fields = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        fields(&ours),
        fields(&theirs),
        "PEFT's config fields, sorted"
    );
    let mut a: Vec<String> = sd(&tmp.path().join("adapter_model.safetensors"))
        .keys()
        .map(str::to_string)
        .collect();
    let mut b: Vec<String> = sd(&dir.join("adapter_model.safetensors"))
        .keys()
        .map(str::to_string)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// A `#[derive(Module)]` field typed `Linear` (torchvision's ResNet `fc`) cannot hold the
/// wrapper: `K0406`, and the model is left unchanged.
#[test]
fn typed_fields_refuse_the_wrapper_and_stay_unchanged() {
    let mut net = kiln::models::build("resnet18", 5, 3, 32).unwrap();
    let before: Vec<String> = net.state_dict().keys().map(str::to_string).collect();
    let e = apply_lora(
        net.as_mut(),
        &LoraConfig::new(2, 4.0, &["layer4.1.conv2", "fc"]),
    )
    .unwrap_err();
    assert_eq!(e.code(), "K0406", "{e}");
    let after: Vec<String> = net.state_dict().keys().map(str::to_string).collect();
    assert_eq!(before, after);
}
