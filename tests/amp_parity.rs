//! Mixed precision in the trainer against real PyTorch (fixtures from
//! scripts/gen_amp_fixtures.py, torch 2.15 CPU): a small CNN + Linear
//! (Conv2d → ReLU → MaxPool2d → Flatten → Linear → ReLU → Linear) trained for 6 SGD steps
//! (lr 0.1, momentum 0.9, batch 16) as plain f32, under
//! `torch.autocast("cpu", dtype=torch.bfloat16)` (Lightning's `bf16-mixed`), and under f16
//! autocast with `torch.amp.GradScaler("cpu")` (`16-mixed`).
//!
//! The tolerances are what bf16 allows: bf16 keeps 8 significant bits (relative rounding
//! 2^-9 ≈ 2e-3) and kiln's f32 accumulation order differs from oneDNN's, so a value that
//! rounds differently once moves by a bf16 ulp. The test also checks that kiln's bf16 run is
//! much nearer PyTorch's bf16 run than PyTorch's own f32 run is, i.e. that it reproduces the
//! rounding rather than just landing near the f32 result.

use candle_core::{DType, Device, Tensor};
use kiln::amp::Precision;
use kiln::data::TensorDataset;
use kiln::nn::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};
use kiln::optim::SgdConfig;
use kiln::train::{Hook, OptimizerChoice, StepReport, Trainer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

fn fixtures() -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/amp/");
    let t =
        candle_core::safetensors::load(format!("{dir}autocast.safetensors"), &Device::Cpu).unwrap();
    let meta =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}autocast.json")).unwrap())
            .unwrap();
    (t, meta)
}

fn model(t: &HashMap<String, Tensor>) -> Sequential {
    let g = |k: &str| t[&format!("init.{k}")].clone();
    Sequential::new()
        .with(
            Conv2d::from_tensors(g("0.weight"), Some(g("0.bias")), Conv2dConfig::default())
                .unwrap(),
        )
        .with(ReLU)
        .with(MaxPool2d::new(2))
        .with(Flatten::new(1))
        .with(Linear::from_tensors(g("4.weight"), Some(g("4.bias"))).unwrap())
        .with(ReLU)
        .with(Linear::from_tensors(g("6.weight"), Some(g("6.bias"))).unwrap())
}

struct Losses(Rc<RefCell<Vec<StepReport>>>);

impl Hook for Losses {
    fn on_step(&mut self, _t: &Trainer, s: &StepReport) -> kiln::Result<()> {
        self.0.borrow_mut().push(*s);
        Ok(())
    }
}

/// Trains the fixture's model 6 steps with `precision`; the step reports and the trainer.
fn train(precision: Option<Precision>) -> (Vec<StepReport>, Trainer) {
    train_with(precision, |b| b)
}

fn train_with(
    precision: Option<Precision>,
    more: impl FnOnce(kiln::train::TrainerBuilder) -> kiln::train::TrainerBuilder,
) -> (Vec<StepReport>, Trainer) {
    let (t, meta) = fixtures();
    let labels: Vec<i64> = t["y"].to_vec1::<i64>().unwrap();
    let data = TensorDataset::new("amp", &t["x"], labels).unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let mut b = Trainer::builder(model(&t), data)
        .optimizer(OptimizerChoice::Sgd(SgdConfig {
            lr: meta["lr"].as_f64().unwrap(),
            momentum: meta["momentum"].as_f64().unwrap(),
            ..Default::default()
        }))
        .batch_size(meta["batch"].as_u64().unwrap() as usize)
        .shuffle(false)
        .epochs(1);
    if let Some(p) = precision {
        b = b.precision(p);
    }
    let mut trainer = more(b).build().unwrap();
    let mut hook = Losses(reports.clone());
    if let Err(e) = trainer.fit_with(&mut [&mut hook]) {
        // only StopAfter may end a run early
        assert!(e.to_string().contains("stop after"), "{e}");
    }
    let r = reports.borrow().clone();
    (r, trainer)
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest |a - b| / (max |b| of the tensor) over the model's tensors: kiln's final weights
/// against `mode`'s.
fn weight_error(trainer: &Trainer, t: &HashMap<String, Tensor>, mode: &str) -> f64 {
    let sd = trainer.model.state_dict();
    let mut worst = 0.0f64;
    for k in [
        "0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias",
    ] {
        let a = flat(sd.get(k).unwrap());
        let b = flat(&t[&format!("{mode}.{k}")]);
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs() / scale);
        }
    }
    worst
}

/// Torch's `a` weights against torch's `b` weights, measured as [`weight_error`].
fn torch_distance(t: &HashMap<String, Tensor>, a: &str, b: &str) -> f64 {
    let mut worst = 0.0f64;
    for k in [
        "0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias",
    ] {
        let x = flat(&t[&format!("{a}.{k}")]);
        let y = flat(&t[&format!("{b}.{k}")]);
        let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (p, q) in x.iter().zip(&y) {
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

fn loss_error(reports: &[StepReport], meta: &serde_json::Value, mode: &str) -> f64 {
    let torch: Vec<f64> = meta["modes"][mode]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(reports.len(), torch.len());
    reports
        .iter()
        .zip(&torch)
        .map(|(r, t)| (r.loss - t).abs() / t.abs())
        .fold(0.0, f64::max)
}

#[test]
fn bf16_mixed_matches_torch_autocast_bf16() {
    let (t, meta) = fixtures();
    let (reports, trainer) = train(Some(Precision::Bf16Mixed));
    let loss = loss_error(&reports, &meta, "bf16");
    let w = weight_error(&trainer, &t, "bf16");
    let w_vs_f32 = weight_error(&trainer, &t, "f32");
    let torch_gap = torch_distance(&t, "bf16", "f32");
    eprintln!(
        "bf16-mixed vs torch bf16 autocast: loss rel err {loss:.2e}, weights {w:.2e} \
         (kiln bf16 vs torch f32 {w_vs_f32:.2e}; torch bf16 vs torch f32 {torch_gap:.2e})"
    );
    assert!(loss < 1e-3, "loss relative error {loss}");
    assert!(w < 1e-2, "weights relative error {w}");
    assert!(
        w < torch_gap / 2.0,
        "kiln bf16 ({w}) not nearer torch bf16 than torch f32 is ({torch_gap})"
    );
    // master weights (and so the optimizer's updates of them) stay f32
    for p in trainer.model.parameters() {
        assert_eq!(p.tensor().dtype(), DType::F32);
    }
    let sd = kiln::optim::Optimizer::state_dict(trainer.optimizer.as_ref()).unwrap();
    let text = format!("{sd:?}").to_lowercase();
    assert!(
        text.contains("f32") && !text.contains("bf16") && !text.contains("f16"),
        "{text}"
    );
    assert!(reports.iter().all(|r| r.grad_scale.is_none() && !r.skipped));
}

#[test]
fn f16_mixed_matches_torch_autocast_f16_with_grad_scaler() {
    let (t, meta) = fixtures();
    let (reports, trainer) = train(Some(Precision::F16Mixed));
    let loss = loss_error(&reports, &meta, "f16");
    let w = weight_error(&trainer, &t, "f16");
    let torch_gap = torch_distance(&t, "f16", "f32");
    eprintln!(
        "16-mixed vs torch f16 autocast + GradScaler: loss rel err {loss:.2e}, weights {w:.2e} \
         (torch f16 vs torch f32 {torch_gap:.2e})"
    );
    assert!(loss < 1e-4, "loss relative error {loss}");
    assert!(w < 2e-3, "weights relative error {w}");
    let scales: Vec<f64> = meta["modes"]["f16"]["scales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let ours: Vec<f64> = reports.iter().map(|r| r.grad_scale.unwrap()).collect();
    assert_eq!(ours, scales);
    let sd = trainer.grad_scaler.as_ref().unwrap().state_dict();
    let torch_sd = &meta["modes"]["f16"]["state_dict"];
    assert_eq!(
        sd.get("scale").and_then(kiln::io::Value::as_f64),
        torch_sd["scale"].as_f64()
    );
    assert_eq!(
        sd.get("_growth_tracker").and_then(kiln::io::Value::as_i64),
        torch_sd["_growth_tracker"].as_i64()
    );
}

#[test]
fn precision_32_is_the_default_and_matches_torch_f32() {
    let (t, meta) = fixtures();
    let (default_reports, default_trainer) = train(None);
    let (reports, trainer) = train(Some(Precision::F32));
    // bit for bit the same run as without the setting
    assert_eq!(default_reports.len(), reports.len());
    for (a, b) in default_reports.iter().zip(&reports) {
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    }
    let (a, b) = (
        default_trainer.model.state_dict(),
        trainer.model.state_dict(),
    );
    for (k, v) in a.iter() {
        assert_eq!(flat(v), flat(b.get(k).unwrap()), "{k}");
    }
    assert_eq!(trainer.precision, Precision::F32);
    assert!(trainer.grad_scaler.is_none());
    let loss = loss_error(&reports, &meta, "f32");
    let w = weight_error(&trainer, &t, "f32");
    eprintln!("precision 32 vs torch f32: loss rel err {loss:.2e}, weights {w:.2e}");
    assert!(loss < 1e-5 && w < 1e-5, "{loss} {w}");
}

/// A first scale of 2^40 overflows the f16 gradients: those steps are skipped (the weights
/// stay as they were), the scale halves each time until the gradients are finite, then
/// grows after every `growth_interval` finite steps — `_amp_update_scale_` step by step.
#[test]
fn forced_overflow_skips_steps_and_backs_off() {
    let (t, _) = fixtures();
    let init = 1099511627776.0; // 2^40
    let (reports, trainer) = train_with(Some(Precision::F16Mixed), |b| {
        b.batch_size(4).grad_scaler(kiln::amp::GradScalerConfig {
            init_scale: init,
            growth_interval: 3,
            ..Default::default()
        })
    });
    assert_eq!(reports.len(), 24);
    assert!(reports[0].skipped, "2^40 must overflow f16");
    let skipped = reports.iter().filter(|r| r.skipped).count();
    assert!((5..24).contains(&skipped), "{skipped} skipped");
    // the update rule, step by step
    let (mut scale, mut tracker) = (init, 0);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.grad_scale, Some(scale), "step {i}");
        if r.skipped {
            assert_eq!(r.grad_norm, None);
            scale *= 0.5;
            tracker = 0;
        } else {
            tracker += 1;
            if tracker == 3 {
                scale *= 2.0;
                tracker = 0;
            }
        }
    }
    let s = trainer.grad_scaler.as_ref().unwrap();
    assert_eq!((s.get_scale(), s.growth_tracker()), (scale, tracker));
    assert!(scale < init / 1024.0);
    // skipped steps leave the weights alone: a run of only the first (skipped) step ends
    // with the initial weights
    let (first, one) = train_with(Some(Precision::F16Mixed), |b| {
        b.batch_size(4)
            .grad_scaler(kiln::amp::GradScalerConfig {
                init_scale: init,
                growth_interval: 3,
                ..Default::default()
            })
            .hook(StopAfter(1))
    });
    assert_eq!(first.len(), 1);
    assert!(first[0].skipped && reports[1].skipped);
    // two skipped steps: two backoffs, and the initial weights
    assert_eq!(one.grad_scaler.as_ref().unwrap().get_scale(), init / 4.0);
    let sd = one.model.state_dict();
    for k in ["0.weight", "4.weight", "6.bias"] {
        assert_eq!(
            flat(sd.get(k).unwrap()),
            flat(&t[&format!("init.{k}")]),
            "{k}"
        );
    }
}

/// Fails the run at step `n + 1` (owned hooks run first, so the recording hook has seen
/// steps `1..=n`; the model has taken step `n + 1`).
struct StopAfter(usize);

impl Hook for StopAfter {
    fn on_step(&mut self, t: &Trainer, _s: &StepReport) -> kiln::Result<()> {
        if t.state.global_step as usize > self.0 {
            return Err(kiln::Error::invalid("test", "stop after", "a stop"));
        }
        Ok(())
    }
}

/// `clip_grad_norm` sees unscaled gradients under 16-mixed (Lightning unscales first): the
/// norm it reports is the f32 run's within f16 rounding, not 65536 times it.
#[test]
fn clipping_sees_unscaled_gradients() {
    let clip = |b: kiln::train::TrainerBuilder| b.clip_grad_norm(1e9, 2.0);
    let (f32_reports, _) = train_with(None, clip);
    let (f16_reports, _) = train_with(Some(Precision::F16Mixed), clip);
    for (a, b) in f32_reports.iter().zip(&f16_reports) {
        let (na, nb) = (a.grad_norm.unwrap(), b.grad_norm.unwrap());
        assert!(
            (na - nb).abs() <= 1e-2 * na,
            "f32 norm {na}, 16-mixed norm {nb}"
        );
    }
}

/// The autocast guard: nests, restores, is per thread, and only bf16/f16 turn it on; the
/// casts round forward values and the gradients coming back, and never touch f64.
#[test]
fn autocast_guard_scopes_and_rounds_gradients() {
    use kiln::amp::autocast;
    assert_eq!(autocast::current(), None);
    {
        let _a = autocast::enter(Some(DType::BF16));
        assert_eq!(autocast::current(), Some(DType::BF16));
        {
            let _b = autocast::enter(None);
            assert_eq!(autocast::current(), None);
            let _c = autocast::enter(Some(DType::F32));
            assert_eq!(autocast::current(), None, "f32 is no autocast dtype");
        }
        assert_eq!(autocast::current(), Some(DType::BF16));
        std::thread::spawn(|| assert_eq!(autocast::current(), None))
            .join()
            .unwrap();
    }
    assert_eq!(autocast::current(), None);
    let v = candle_core::Var::from_tensor(&Tensor::new(&[3.0f32], &Device::Cpu).unwrap()).unwrap();
    let k = Tensor::new(&[1.0f32 + 1.0 / 512.0], &Device::Cpu).unwrap();
    let r = autocast::with(Some(DType::BF16), || autocast::round(v.as_tensor())).unwrap();
    let g = r.mul(&k).unwrap().sum_all().unwrap().backward().unwrap();
    let gv = g.get(v.as_tensor()).unwrap();
    assert_eq!(gv.dtype(), DType::F32);
    assert_eq!(
        gv.to_vec1::<f32>().unwrap(),
        [1.0],
        "1 + 2^-9 rounds to 1 in bf16"
    );
    let f64t = Tensor::new(&[0.1f64], &Device::Cpu).unwrap();
    let r = autocast::with(Some(DType::F16), || autocast::round(&f64t)).unwrap();
    assert_eq!(r.to_vec1::<f64>().unwrap(), [0.1], "f64 is never cast");
    // a Linear under autocast gives exactly the bf16-rounded computation
    let w = Tensor::new(&[[0.1f32, 0.2, 0.3]], &Device::Cpu).unwrap();
    let x = Tensor::new(&[[1.001f32, 2.002, 3.003]], &Device::Cpu).unwrap();
    let lin = Linear::from_tensors(w.clone(), None).unwrap();
    let y = autocast::with(Some(DType::BF16), || lin.forward(&x)).unwrap();
    let bf = |t: &Tensor| {
        t.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let want = bf(&bf(&x).matmul(&bf(&w).t().unwrap()).unwrap());
    assert_eq!(y.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
    assert_ne!(
        lin.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
        want.to_vec2::<f32>().unwrap(),
        "without autocast nothing is rounded"
    );
}

#[test]
fn precision_names_are_lightnings() {
    for p in [Precision::F32, Precision::Bf16Mixed, Precision::F16Mixed] {
        assert_eq!(Precision::parse(p.as_str()).unwrap(), p);
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, format!("\"{}\"", p.as_str()));
    }
    assert_eq!(Precision::parse("32-true").unwrap(), Precision::F32);
    assert_eq!(Precision::parse("fp8").unwrap_err().code(), "K0003");
    assert_eq!(Precision::default(), Precision::F32);
    // GradScaler settings without 16-mixed are refused by build()
    let (t, _) = fixtures();
    let data = TensorDataset::new("amp", &t["x"], t["y"].to_vec1::<i64>().unwrap()).unwrap();
    let e = Trainer::builder(model(&t), data)
        .precision(Precision::Bf16Mixed)
        .grad_scaler(kiln::amp::GradScalerConfig::default())
        .build()
        .err()
        .unwrap();
    assert_eq!(e.code(), "K0003");
}

/// DataParallel replicas run in their own threads and inherit the caller's autocast (as
/// PyTorch's `parallel_apply` does): under bf16 their rows are the plain model's bf16 rows,
/// not f32 ones.
#[test]
fn data_parallel_replicas_inherit_autocast() {
    use kiln::amp::autocast;
    use kiln::models::{LeNet, LeNetConfig};
    kiln::rng::manual_seed(1);
    let model = LeNet::new(LeNetConfig::default()).unwrap();
    kiln::rng::manual_seed(99);
    let v = kiln::rng::with(|g| g.uniform_vec(10 * 64, 0.0, 1.0));
    let x = Tensor::from_vec(v, (10, 1, 8, 8), &Device::Cpu).unwrap();
    let plain32 = flat(&model.forward(&x).unwrap());
    let plain16 = flat(&autocast::with(Some(DType::BF16), || model.forward(&x)).unwrap());
    let dp =
        kiln::parallel::DataParallel::new(Box::new(model), &["cpu", "cpu", "cpu"], None).unwrap();
    let dp16 = flat(&autocast::with(Some(DType::BF16), || dp.forward(&x)).unwrap());
    let diff = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
    };
    assert!(
        diff(&plain16, &plain32) > 1e-4,
        "bf16 must change the outputs"
    );
    assert!(
        diff(&dp16, &plain16) < 1e-6,
        "replica rows not under autocast: {}",
        diff(&dp16, &plain16)
    );
}
