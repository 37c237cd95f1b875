//! How each fixture kind builds its kiln module and calls it.

use super::Inputs;
use candle_core::Tensor;
use kiln::Module;
use kiln::nn::functional::scaled_dot_product_attention;
use kiln::nn::{AttentionArgs, MultiheadAttention, MultiheadAttentionConfig};
use serde_json::Value;

fn b(v: &Value, k: &str, d: bool) -> bool {
    v[k].as_bool().unwrap_or(d)
}

fn u(v: &Value, k: &str) -> usize {
    v[k].as_u64().unwrap_or_else(|| panic!("config {k}")) as usize
}

fn ou(v: &Value, k: &str) -> Option<usize> {
    v[k].as_u64().map(|x| x as usize)
}

fn f(v: &Value, k: &str, d: f64) -> f64 {
    v[k].as_f64().unwrap_or(d)
}

fn down<T: 'static>(m: Option<&dyn Module>) -> &T {
    m.and_then(|m| m.as_any().downcast_ref::<T>())
        .expect("module of the case's kind")
}

pub fn sdpa(_m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let y = scaled_dot_product_attention(
        i.get("q"),
        i.get("k"),
        i.get("v"),
        i.opt("mask"),
        0.0,
        b(o, "is_causal", false),
        o["scale"].as_f64(),
    )
    .unwrap();
    vec![("y".into(), Some(y))]
}

pub fn mha_config(c: &Value) -> MultiheadAttentionConfig {
    MultiheadAttentionConfig {
        dropout: f(c, "dropout", 0.0),
        bias: b(c, "bias", true),
        add_bias_kv: b(c, "add_bias_kv", false),
        add_zero_attn: b(c, "add_zero_attn", false),
        kdim: ou(c, "kdim"),
        vdim: ou(c, "vdim"),
        batch_first: b(c, "batch_first", false),
    }
}

pub fn build_mha(c: &Value) -> Option<Box<dyn Module>> {
    let m = MultiheadAttention::with(u(c, "embed_dim"), u(c, "num_heads"), mha_config(c)).unwrap();
    Some(Box::new(m))
}

pub fn mha(m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let m: &MultiheadAttention = down(m);
    let (q, k, v) = if b(o, "self_attn", false) {
        (i.get("x"), i.get("x"), i.get("x"))
    } else {
        (i.get("query"), i.get("key"), i.get("value"))
    };
    let args = AttentionArgs {
        key_padding_mask: i.opt("key_padding_mask"),
        need_weights: b(o, "need_weights", true),
        attn_mask: i.opt("attn_mask"),
        average_attn_weights: b(o, "average_attn_weights", true),
        is_causal: b(o, "is_causal", false),
    };
    let (y, w) = m.forward_with(q, k, v, args).unwrap();
    vec![("output".into(), Some(y)), ("weights".into(), w)]
}

use kiln::nn::{
    DecoderArgs, EncoderArgs, GRU, GRUCell, LSTM, LSTMCell, LayerNorm, RnnConfig,
    TransformerActivation, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
    TransformerLayerConfig,
};

fn layer_config(c: &Value) -> TransformerLayerConfig {
    TransformerLayerConfig {
        dim_feedforward: u(c, "dim_feedforward"),
        dropout: f(c, "dropout", 0.1),
        activation: TransformerActivation::parse(c["activation"].as_str().unwrap_or("relu"))
            .unwrap(),
        layer_norm_eps: f(c, "layer_norm_eps", 1e-5),
        batch_first: b(c, "batch_first", false),
        norm_first: b(c, "norm_first", false),
        bias: b(c, "bias", true),
    }
}

pub fn build_encoder_layer(c: &Value) -> Option<Box<dyn Module>> {
    let l = TransformerEncoderLayer::with(u(c, "d_model"), u(c, "nhead"), layer_config(c));
    Some(Box::new(l.unwrap()))
}

pub fn build_encoder(c: &Value) -> Option<Box<dyn Module>> {
    let l = TransformerEncoderLayer::with(u(c, "d_model"), u(c, "nhead"), layer_config(c));
    let norm = b(c, "final_norm", false).then(|| LayerNorm::new(&[u(c, "d_model")]).unwrap());
    let e = TransformerEncoder::new(l.unwrap(), u(c, "num_layers"), norm).unwrap();
    Some(Box::new(e))
}

pub fn build_decoder_layer(c: &Value) -> Option<Box<dyn Module>> {
    let l = TransformerDecoderLayer::with(u(c, "d_model"), u(c, "nhead"), layer_config(c));
    Some(Box::new(l.unwrap()))
}

pub fn encoder(m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let args = EncoderArgs {
        src_mask: i.opt("src_mask"),
        src_key_padding_mask: i.opt("src_key_padding_mask"),
        is_causal: b(o, "is_causal", false),
    };
    let m = m.unwrap();
    let y = if let Some(l) = m.as_any().downcast_ref::<TransformerEncoderLayer>() {
        l.forward_with(i.get("src"), args).unwrap()
    } else {
        let e: &TransformerEncoder = down(Some(m));
        e.forward_with(i.get("src"), args).unwrap()
    };
    vec![("output".into(), Some(y))]
}

pub fn decoder(m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let l: &TransformerDecoderLayer = down(m);
    let args = DecoderArgs {
        tgt_mask: i.opt("tgt_mask"),
        memory_mask: i.opt("memory_mask"),
        tgt_key_padding_mask: i.opt("tgt_key_padding_mask"),
        memory_key_padding_mask: i.opt("memory_key_padding_mask"),
        tgt_is_causal: b(o, "tgt_is_causal", false),
        memory_is_causal: false,
    };
    let y = l.forward_with(i.get("tgt"), i.get("memory"), args).unwrap();
    vec![("output".into(), Some(y))]
}

fn rnn_config(c: &Value) -> RnnConfig {
    RnnConfig {
        num_layers: ou(c, "num_layers").unwrap_or(1),
        bias: b(c, "bias", true),
        batch_first: b(c, "batch_first", false),
        dropout: f(c, "dropout", 0.0),
        bidirectional: b(c, "bidirectional", false),
        proj_size: ou(c, "proj_size").unwrap_or(0),
    }
}

pub fn build_lstm(c: &Value) -> Option<Box<dyn Module>> {
    let m = LSTM::with(u(c, "input_size"), u(c, "hidden_size"), rnn_config(c)).unwrap();
    Some(Box::new(m))
}

pub fn build_gru(c: &Value) -> Option<Box<dyn Module>> {
    let m = GRU::with(u(c, "input_size"), u(c, "hidden_size"), rnn_config(c)).unwrap();
    Some(Box::new(m))
}

fn lengths(o: &Value) -> Option<Vec<usize>> {
    o["lengths"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
}

pub fn lstm(m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let m: &LSTM = down(m);
    let state = i.opt("h0").map(|h| (h, i.get("c0")));
    let l = lengths(o);
    let (y, (h, c)) = m.forward_with(i.get("x"), state, l.as_deref()).unwrap();
    vec![
        ("output".into(), Some(y)),
        ("h_n".into(), Some(h)),
        ("c_n".into(), Some(c)),
    ]
}

pub fn gru(m: Option<&dyn Module>, o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let m: &GRU = down(m);
    let l = lengths(o);
    let (y, h) = m
        .forward_with(i.get("x"), i.opt("h0"), l.as_deref())
        .unwrap();
    vec![("output".into(), Some(y)), ("h_n".into(), Some(h))]
}

pub fn build_lstm_cell(c: &Value) -> Option<Box<dyn Module>> {
    let m = LSTMCell::new(u(c, "input_size"), u(c, "hidden_size"), b(c, "bias", true));
    Some(Box::new(m.unwrap()))
}

pub fn build_gru_cell(c: &Value) -> Option<Box<dyn Module>> {
    let m = GRUCell::new(u(c, "input_size"), u(c, "hidden_size"), b(c, "bias", true));
    Some(Box::new(m.unwrap()))
}

pub fn lstm_cell(m: Option<&dyn Module>, _o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let m: &LSTMCell = down(m);
    let state = i.opt("h0").map(|h| (h, i.get("c0")));
    let (h, c) = m.forward_with(i.get("x"), state).unwrap();
    vec![("h".into(), Some(h)), ("c".into(), Some(c))]
}

pub fn gru_cell(m: Option<&dyn Module>, _o: &Value, i: &Inputs) -> Vec<(String, Option<Tensor>)> {
    let m: &GRUCell = down(m);
    vec![(
        "h".into(),
        Some(m.forward_with(i.get("x"), i.opt("h0")).unwrap()),
    )]
}
