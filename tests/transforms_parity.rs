//! kiln's transforms against torchvision's outputs on the same PIL-written image
//! (`tests/fixtures/data/transforms`, made by `scripts/gen_transform_fixtures.py`; versions
//! in `versions.json`). Crops, flips, Normalize and Grayscale are exact or within float
//! rounding; Resize within 1/255 a pixel.

use kiln::data::sources::{DecodeLimits, decode_image};
use kiln::data::transforms::{
    CenterCrop, Grayscale, Image, Normalize, RandomHorizontalFlip, Resize, Transform,
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, imagenet_eval, sample_rng,
};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/transforms")
}

fn expected(name: &str) -> Image {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let e = &m[name];
    let shape: Vec<usize> = e["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let bytes = std::fs::read(dir().join(e["file"].as_str().unwrap())).unwrap();
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Image::new(shape[0], shape[1], shape[2], data).unwrap()
}

fn src() -> Image {
    decode_image(&dir().join("src.png"), false, DecodeLimits::default()).unwrap()
}

/// Largest absolute difference; panics on a shape mismatch.
fn max_err(a: &Image, b: &Image) -> f32 {
    assert_eq!(
        (a.channels, a.height, a.width),
        (b.channels, b.height, b.width)
    );
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run(t: &dyn Transform, img: Image) -> Image {
    t.apply(img, &mut sample_rng(0, 0, 0)).unwrap()
}

#[test]
fn png_decodes_exactly_as_pil_to_tensor() {
    assert_eq!(max_err(&src(), &expected("to_tensor_png")), 0.0);
    let gray = decode_image(&dir().join("src.png"), true, DecodeLimits::default()).unwrap();
    assert_eq!(max_err(&gray, &expected("pil_gray_png")), 0.0);
}

#[test]
fn jpeg_decodes_close_to_pil() {
    let img = decode_image(&dir().join("src.jpg"), false, DecodeLimits::default()).unwrap();
    let e = expected("to_tensor_jpg");
    let err = max_err(&img, &e);
    let mean: f32 = img
        .data
        .iter()
        .zip(&e.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / e.data.len() as f32;
    eprintln!(
        "jpeg vs PIL: max {err} ({:.1}/255), mean {mean}",
        err * 255.0
    );
    // Two JPEG decoders (jpeg-decoder vs libjpeg-turbo) differ in IDCT and upsampling.
    assert!(
        mean < 2.0 / 255.0 && err < 24.0 / 255.0,
        "max {err} mean {mean}"
    );
}

#[test]
fn crops_flip_normalize_grayscale_are_exact() {
    for (t, name) in [
        (&CenterCrop::new(24) as &dyn Transform, "center_crop_24"),
        (&CenterCrop { size: (20, 50) }, "center_crop_20x50"),
        (&CenterCrop::new(41), "center_crop_41"),
        (&RandomHorizontalFlip { p: 1.0 }, "hflip"),
        (&Normalize::imagenet(), "normalize"),
        (
            &Grayscale {
                num_output_channels: 1,
            },
            "grayscale_1",
        ),
        (
            &Grayscale {
                num_output_channels: 3,
            },
            "grayscale_3",
        ),
    ] {
        let err = max_err(&run(t, src()), &expected(name));
        eprintln!("{name}: max abs error {err:e}");
        assert_eq!(err, 0.0, "{name}");
    }
}

#[test]
fn resize_within_one_255th() {
    for (t, name) in [
        (Resize::new(20), "resize_20"),
        (Resize::exact(30, 17), "resize_30x17"),
        (Resize::new(80), "resize_80"),
    ] {
        let err = max_err(&run(&t, src()), &expected(name));
        eprintln!("{name}: max abs error {err:e} ({:.4}/255)", err * 255.0);
        assert!(err <= 1.0 / 255.0, "{name}: {err}");
    }
    let err = max_err(
        &run(&imagenet_eval(32), src()),
        &expected("imagenet_eval_32"),
    );
    eprintln!("imagenet_eval_32: max abs error {err:e}");
    assert!(err <= 1.0 / 255.0 / 0.225, "{err}");
}

#[test]
fn color_adjustments_match_torchvision() {
    for (out, name, tol) in [
        (adjust_brightness(src(), 1.3), "brightness_1.3", 1e-6),
        (adjust_contrast(src(), 0.7), "contrast_0.7", 1e-6),
        (adjust_saturation(src(), 1.5), "saturation_1.5", 1e-6),
        (adjust_hue(src(), 0.2), "hue_0.2", 1e-5),
    ] {
        let err = max_err(&out, &expected(name));
        eprintln!("{name}: max abs error {err:e}");
        assert!(err <= tol, "{name}: {err}");
    }
}
