//! torchvision interop for ResNet-18, on files generated at test time by
//! `scripts/gen_resnet_interop.py` (see `scripts/nn_interop.sh`). Gated on the environment
//! variable `KILN_INTEROP_DIR` (the folder holding the files), so a plain `cargo test` passes
//! without Python; when the variable is set, missing files are a failure.

mod common;

use candle_core::Var;
use common::{Errors, check_grads, check_state_after, get, load, state_dict};
use kiln::Module;
use kiln::models::{ResNet, ResNetConfig};
use kiln::nn::loss::cross_entropy;
use std::path::PathBuf;

fn interop_dir() -> Option<PathBuf> {
    match std::env::var_os("KILN_INTEROP_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!("KILN_INTEROP_DIR not set: skipping (run scripts/nn_interop.sh)");
            None
        }
    }
}

/// torchvision weights (BatchNorm statistics randomised) → kiln's eval-mode logits equal
/// torchvision's within 1e-4.
#[test]
fn resnet18_torchvision_weights_give_torchvision_logits_in_eval_mode() {
    let Some(dir) = interop_dir() else { return };
    let weights = load(&dir.join("resnet18.safetensors"));
    let io = load(&dir.join("resnet18_eval_io.safetensors"));
    let m = ResNet::resnet18(ResNetConfig::default()).unwrap();
    m.load_state_dict(&state_dict(&weights, ""), true).unwrap();
    m.eval();
    let logits = m.forward(get(&io, "input")).unwrap();
    let mut errs = Errors::default();
    errs.check("logits", &logits, get(&io, "logits"));
    let abs = (&logits - get(&io, "logits"))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!("resnet18 eval: max absolute logit error {abs:.3e}");
    errs.assert_below("resnet18_eval", 1e-4);
    assert!(abs < 1e-4, "max absolute error {abs}");
}

/// Training mode: logits, loss, every parameter's gradient and the BatchNorm running
/// statistics after the step, against torchvision.
#[test]
fn resnet18_train_mode_step_matches_torchvision() {
    let Some(dir) = interop_dir() else { return };
    let t = load(&dir.join("resnet18_train.safetensors"));
    let m = ResNet::resnet18(ResNetConfig {
        num_classes: 10,
        in_channels: 3,
    })
    .unwrap();
    m.load_state_dict(&state_dict(&t, "param."), true).unwrap();
    m.train(true);
    let x = Var::from_tensor(get(&t, "input")).unwrap();
    let out = m.forward(x.as_tensor()).unwrap();
    let loss = cross_entropy(&out, get(&t, "target")).unwrap();
    let store = loss.backward().unwrap();
    let mut errs = Errors::default();
    errs.check("output", &out, get(&t, "output"));
    errs.check("loss", &loss, get(&t, "loss"));
    check_grads(&mut errs, &t, &store, x.as_tensor(), &m);
    check_state_after(&mut errs, &t, &m);
    errs.assert_below("resnet18_train", 1e-4);
}
