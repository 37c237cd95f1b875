//! `kiln::amp::GradScaler` against `torch.amp.GradScaler("cpu")` (fixtures from
//! scripts/gen_grad_scaler_fixtures.py): 14 SGD steps with NaN, inf and -inf planted in a
//! gradient at steps 3, 8 and 9. The scaled loss, the scaled and unscaled gradients, which
//! steps are skipped, the weights after every step and the `state_dict` after every
//! `update()` (scale, factors, interval, `_growth_tracker`) must all be PyTorch's.

use candle_core::{Device, Tensor};
use kiln::Param;
use kiln::amp::{GradScaler, GradScalerConfig};
use kiln::io::Value;
use kiln::optim::{Grads, Optimizer, Sgd, SgdConfig};
use std::collections::HashMap;

fn fixtures() -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/amp/");
    let t = candle_core::safetensors::load(format!("{dir}grad_scaler.safetensors"), &Device::Cpu)
        .unwrap();
    let meta =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}grad_scaler.json")).unwrap())
            .unwrap();
    (t, meta)
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Elements equal within `tol` relative (to at least `floor`); NaN where NaN, the same
/// infinities.
fn close(what: &str, a: &Tensor, b: &Tensor, tol: f32, floor: f32) {
    for (i, (x, y)) in vals(a).iter().zip(vals(b)).enumerate() {
        let same =
            (x.is_nan() && y.is_nan()) || x == &y || (x - y).abs() <= tol * y.abs().max(floor);
        assert!(same, "{what}[{i}]: kiln {x}, torch {y}");
    }
}

#[test]
fn grad_scaler_matches_torch_amp() {
    let (t, meta) = fixtures();
    let c = &meta["config"];
    let mut scaler = GradScaler::new(GradScalerConfig {
        init_scale: c["init_scale"].as_f64().unwrap(),
        growth_factor: c["growth_factor"].as_f64().unwrap(),
        backoff_factor: c["backoff_factor"].as_f64().unwrap(),
        growth_interval: c["growth_interval"].as_u64().unwrap(),
    })
    .unwrap();
    let w = Param::new(&t["w0"], true).unwrap();
    let x = &t["x"];
    let mut opt = Sgd::new(
        vec![("w".into(), w.clone())],
        SgdConfig {
            lr: meta["lr"].as_f64().unwrap(),
            ..Default::default()
        },
    )
    .unwrap();
    let steps = meta["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 14);
    let mut skipped = 0;
    for (i, s) in steps.iter().enumerate() {
        let loss = x
            .matmul(&w.tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let scaled = scaler.scale(&loss).unwrap();
        let want = s["scaled_loss"].as_f64().unwrap();
        let got = f64::from(scaled.to_scalar::<f32>().unwrap());
        assert!(
            (got - want).abs() <= 1e-6 * want.abs(),
            "step {i}: scaled loss {got} vs {want}"
        );
        let mut grads = Grads::backward(&scaled, std::slice::from_ref(&w)).unwrap();
        if let Some(p) = s["plant"].as_str() {
            let v: f32 = p.parse().unwrap();
            let mut g = vals(grads.get(&w).unwrap());
            g[0] = v;
            grads.insert(w.id(), Tensor::from_vec(g, (4, 3), &Device::Cpu).unwrap());
        }
        close(
            &format!("step {i} scaled grad"),
            grads.get(&w).unwrap(),
            &t[&format!("step{i}.scaled_grad")],
            2e-6,
            1e-6,
        );
        let found = scaler
            .unscale(std::slice::from_ref(&w), &mut grads)
            .unwrap();
        assert_eq!(found, s["plant"].is_string(), "step {i}: found inf");
        close(
            &format!("step {i} unscaled grad"),
            grads.get(&w).unwrap(),
            &t[&format!("step{i}.unscaled_grad")],
            2e-6,
            1e-6,
        );
        let stepped = scaler
            .step(&mut opt, std::slice::from_ref(&w), &mut grads)
            .unwrap();
        assert_eq!(
            stepped,
            s["stepped"].as_bool().unwrap(),
            "step {i}: stepped"
        );
        skipped += usize::from(!stepped);
        scaler.update();
        close(
            &format!("step {i} weights"),
            &w.tensor(),
            &t[&format!("step{i}.w")],
            // candle's matmul rounds differently: a few ulps of the O(1) weights
            2e-6,
            0.1,
        );
        let sd = scaler.state_dict();
        let want = &s["state_dict"];
        for k in ["scale", "growth_factor", "backoff_factor"] {
            assert_eq!(
                sd.get(k).and_then(Value::as_f64),
                want[k].as_f64(),
                "step {i}: {k}"
            );
        }
        for k in ["growth_interval", "_growth_tracker"] {
            assert_eq!(
                sd.get(k).and_then(Value::as_i64),
                want[k].as_i64(),
                "step {i}: {k}"
            );
        }
    }
    assert_eq!(
        skipped, 3,
        "three planted non-finite gradients, three skipped steps"
    );
    // The state resumes: a scaler loaded from the final state_dict is the same scaler.
    let mut other = GradScaler::new(GradScalerConfig::default()).unwrap();
    other.load_state_dict(&scaler.state_dict()).unwrap();
    assert_eq!(other.state_dict(), scaler.state_dict());
    assert_eq!(opt.name(), "SGD");
}

/// A second unscale before `update()` is refused, as PyTorch's RuntimeError.
#[test]
fn unscaling_twice_is_k0003() {
    let w = Param::new(
        &Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        true,
    )
    .unwrap();
    let mut grads = Grads::new();
    grads.insert(
        w.id(),
        Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let mut s = GradScaler::new(GradScalerConfig::default()).unwrap();
    assert!(!s.unscale(std::slice::from_ref(&w), &mut grads).unwrap());
    let e = s.unscale(std::slice::from_ref(&w), &mut grads).unwrap_err();
    assert_eq!(e.code(), "K0003");
    s.update();
    assert!(s.unscale(std::slice::from_ref(&w), &mut grads).is_ok());
}
