use super::*;

fn ramp(c: usize, h: usize, w: usize) -> Image {
    let data = (0..c * h * w)
        .map(|v| v as f32 / (c * h * w) as f32)
        .collect();
    Image::new(c, h, w, data).unwrap()
}

#[test]
fn resize_int_keeps_the_ratio_with_torchvisions_rounding() {
    assert_eq!(Resize::new(20).output_size(37, 53), (20, 28)); // int(20 * 53 / 37) = 28
    assert_eq!(Resize::new(256).output_size(480, 640), (256, 341));
    assert_eq!(Resize::new(7).output_size(10, 3), (23, 7));
}

#[test]
fn center_crop_rounds_half_to_even_like_python() {
    // h - th = 5: int(round(2.5)) = 2, not 3.
    let img = ramp(1, 10, 10);
    let c = center_crop(&img, 5, 5);
    assert_eq!(c.data[0], img.data[2 * 10 + 2]);
    // larger than the image: zero padded
    let p = center_crop(&ramp(1, 2, 2), 4, 4);
    assert_eq!(p.data.iter().filter(|&&v| v == 0.0).count(), 13);
}

#[test]
fn random_resized_crop_params_fit_the_image_and_depend_only_on_the_key() {
    let t = RandomResizedCrop::new(8);
    for k in 0..200 {
        let (i, j, h, w) = t.params(30, 50, &mut sample_rng(1, 2, k));
        assert!(h > 0 && w > 0 && i + h <= 30 && j + w <= 50);
        assert_eq!((i, j, h, w), t.params(30, 50, &mut sample_rng(1, 2, k)));
    }
    // scale that cannot fit (area > 1): every attempt fails, centre fallback.
    let t = RandomResizedCrop {
        scale: (4.0, 5.0),
        ..RandomResizedCrop::new(8)
    };
    assert_eq!(t.params(30, 90, &mut sample_rng(0, 0, 0)), (0, 25, 30, 40));
}

#[test]
fn random_crop_with_padding_and_flip() {
    let img = ramp(3, 6, 6);
    let out = RandomCrop::new(6, 2)
        .apply(img.clone(), &mut sample_rng(0, 0, 0))
        .unwrap();
    assert_eq!((out.height, out.width), (6, 6));
    let f = hflip(img.clone());
    assert_eq!(f.data[0], img.data[5]);
    assert_eq!(hflip(f), img);
    let e = RandomCrop::new(20, 0)
        .apply(img, &mut sample_rng(0, 0, 0))
        .unwrap_err();
    assert_eq!(e.code(), "K0003");
}

#[test]
fn color_jitter_stays_in_range_and_hue_zero_is_identity() {
    let img = ramp(3, 4, 5);
    let j = ColorJitter {
        brightness: 0.4,
        contrast: 0.4,
        saturation: 0.4,
        hue: 0.1,
    };
    let out = j.apply(img.clone(), &mut sample_rng(3, 1, 4)).unwrap();
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let same = adjust_hue(img.clone(), 0.0);
    for (a, b) in same.data.iter().zip(&img.data) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn presets_have_the_requested_size() {
    let img = ramp(3, 40, 60);
    let t = imagenet_train(16)
        .apply(img.clone(), &mut sample_rng(0, 0, 0))
        .unwrap();
    assert_eq!((t.channels, t.height, t.width), (3, 16, 16));
    assert_eq!(Resize::new(224 * 8 / 7).output_size(480, 640).0, 256);
    let e = imagenet_eval(32)
        .apply(img, &mut sample_rng(0, 0, 0))
        .unwrap();
    assert_eq!((e.height, e.width), (32, 32));
}
