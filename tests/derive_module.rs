//! `#[derive(Module)]`: names, order, Vec/Option/Box/Param/Buffer fields, tuple structs,
//! generics, replacement by name (same type, other type → K0406), specs and whole-model
//! files of a user type, the missing-forward error (K0407), train/eval propagation.

use kiln::candle::{DType, Device, Tensor};
use kiln::nn::layers::Conv2dConfig;
use kiln::nn::{Buffer, Conv2d, Dropout, Linear, Module, Param, ReLU};

#[derive(Module)]
struct Block {
    conv: Conv2d,
    act: ReLU,
    down: Option<Conv2d>,
}

impl Block {
    fn new(c: usize, down: bool) -> kiln::Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Block {
            conv: Conv2d::new(c, c, 3, cfg)?,
            act: ReLU,
            down: if down {
                Some(Conv2d::new(c, c, 1, Default::default())?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let y = self.act.forward(&self.conv.forward(x)?)?;
        match &self.down {
            Some(d) => Ok((y + d.forward(x)?)?),
            None => Ok((y + x)?),
        }
    }
}

#[derive(Module)]
struct Net {
    scale: Param,
    stem: Conv2d,
    blocks: Vec<Block>,
    drop: Dropout,
    head: Linear,
    extra: Box<dyn Module>,
    count: Buffer,
    #[module(skip)]
    width: usize,
}

impl Net {
    fn new(width: usize) -> kiln::Result<Self> {
        Ok(Net {
            scale: Param::new(&Tensor::ones(1, DType::F32, &Device::Cpu)?, true)?,
            stem: Conv2d::new(
                1,
                width,
                3,
                Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                },
            )?,
            blocks: vec![Block::new(width, true)?, Block::new(width, false)?],
            drop: Dropout::new(0.25)?,
            head: Linear::new(width, 3, true)?,
            extra: Box::new(kiln::nn::Identity),
            count: Buffer::new(Tensor::zeros(1, DType::I64, &Device::Cpu)?),
            width,
        })
    }

    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let mut x = self.stem.forward(x)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        let x = x.mean((2, 3))?;
        let x = self.drop.forward(&x)?;
        let x = self.extra.forward(&x)?;
        Ok(self.head.forward(&x)?.broadcast_mul(&self.scale.tensor())?)
    }
}

#[derive(Module)]
struct Pair(Linear, Linear);

impl Pair {
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        self.1.forward(&self.0.forward(x)?)
    }
}

#[derive(Module)]
struct Wrap<A: Module> {
    inner: A,
}

impl<A: Module> Wrap<A> {
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        self.inner.forward(x)
    }
}

#[derive(Module)]
struct NoForward {
    fc: Linear,
}

fn x() -> Tensor {
    Tensor::ones((2, 1, 4, 4), DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn keys_follow_declaration_order_like_pytorch() {
    let net = Net::new(4).unwrap();
    let keys: Vec<String> = net.state_dict().keys().map(str::to_string).collect();
    assert_eq!(
        keys,
        [
            "scale",
            "count",
            "stem.weight",
            "stem.bias",
            "blocks.0.conv.weight",
            "blocks.0.conv.bias",
            "blocks.0.down.weight",
            "blocks.0.down.bias",
            "blocks.1.conv.weight",
            "blocks.1.conv.bias",
            "head.weight",
            "head.bias",
        ]
    );
    // Own parameters first, then children's, each once; the buffer is not a parameter.
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 11);
    assert_eq!(names[0], "scale");
    let out = net.forward(&x()).unwrap();
    assert_eq!(out.dims(), &[2, 3]);
    assert_eq!(net.type_name(), "Net");
    assert_eq!(
        net.get_submodule("blocks.1.conv").unwrap().type_name(),
        "Conv2d"
    );
    assert_eq!(
        net.get_submodule("blocks").unwrap().type_name(),
        "ModuleList"
    );
}

#[test]
fn tuple_structs_and_generics_derive() {
    let p = Pair(
        Linear::new(3, 4, true).unwrap(),
        Linear::new(4, 2, false).unwrap(),
    );
    let keys: Vec<String> = p.state_dict().keys().map(str::to_string).collect();
    assert_eq!(keys, ["0.weight", "0.bias", "1.weight"]);
    let w = Wrap { inner: p };
    let keys: Vec<String> = w.state_dict().keys().map(str::to_string).collect();
    assert_eq!(keys, ["inner.0.weight", "inner.0.bias", "inner.1.weight"]);
    let y = w
        .forward(&Tensor::ones((5, 3), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(y.dims(), &[5, 2]);
}

#[test]
fn plain_field_heads_are_replaceable_by_name() {
    let mut net = Net::new(4).unwrap();
    // Same type, other size: the new head is used.
    let old = net
        .replace_submodule("head", Box::new(Linear::new(4, 7, true).unwrap()))
        .unwrap();
    assert_eq!(old.type_name(), "Linear");
    assert_eq!(net.forward(&x()).unwrap().dims(), &[2, 7]);
    // Inside a Vec field.
    net.replace_submodule(
        "blocks.1.conv",
        Box::new(Conv2d::new(4, 4, 1, Default::default()).unwrap()),
    )
    .unwrap();
    assert_eq!(
        net.state_dict().get("blocks.1.conv.weight").unwrap().dims(),
        &[4, 4, 1, 1]
    );
    // A Box<dyn Module> field takes any module.
    net.replace_submodule("extra", Box::new(ReLU)).unwrap();
    // Another type into a typed field: K0406 naming both.
    let e = net.replace_submodule("head", Box::new(ReLU)).err().unwrap();
    assert_eq!(e.code(), "K0406");
    let m = e.to_string();
    assert!(
        m.contains("Linear") && m.contains("ReLU") && m.contains("Net.head"),
        "{m}"
    );
    // No such child: K0404 listing the real children.
    let e = net.replace_submodule("fc", Box::new(ReLU)).err().unwrap();
    assert_eq!(e.code(), "K0404");
    assert!(
        e.to_string().contains("stem, blocks, drop, head, extra"),
        "{e}"
    );
}

#[test]
fn missing_inherent_forward_is_k0407_not_a_stack_overflow() {
    let m = NoForward {
        fc: Linear::new(2, 2, true).unwrap(),
    };
    let e =
        Module::forward(&m, &Tensor::ones((1, 2), DType::F32, &Device::Cpu).unwrap()).unwrap_err();
    assert_eq!(e.code(), "K0407");
    assert!(e.to_string().contains("NoForward"), "{e}");
}

#[test]
fn train_and_eval_reach_every_field() {
    let net = Net::new(4).unwrap();
    net.eval();
    assert!(!net.is_training());
    let a = net.forward(&x()).unwrap().to_vec2::<f32>().unwrap();
    let b = net.forward(&x()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(a, b, "dropout is off in eval mode");
    net.train(true);
    assert!(net.is_training());
}

#[test]
fn whole_model_file_of_a_derived_type_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.kiln.pt");
    let net = Net::new(5).unwrap();
    net.eval();
    kiln::io::save_model(&net, &path).unwrap();
    let back = kiln::io::load_model(&path, &kiln::LoadOptions::new()).unwrap();
    assert_eq!(back.type_name(), "Net");
    let back_net = back.as_any().downcast_ref::<Net>().expect("a Net");
    assert_eq!(back_net.width, 5);
    assert!(back_net.down_is_some());
    back.eval();
    let a = net.forward(&x()).unwrap().to_vec2::<f32>().unwrap();
    let b = back.forward(&x()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(a, b);
    assert_eq!(
        net.state_dict().keys().count(),
        back.state_dict().keys().count()
    );
}

impl Net {
    fn down_is_some(&self) -> bool {
        self.blocks[0].down.is_some() && self.blocks[1].down.is_none()
    }
}

/// Regression: `eval()` was not recorded for models without Dropout/BatchNorm.
#[test]
fn eval_is_recorded_for_models_of_plain_layers() {
    let p = Pair(
        Linear::new(3, 4, true).unwrap(),
        Linear::new(4, 2, false).unwrap(),
    );
    assert!(p.is_training());
    p.eval();
    assert!(!p.is_training());
    p.train(true);
    assert!(p.is_training());
}
