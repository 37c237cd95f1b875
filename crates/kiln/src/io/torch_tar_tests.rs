use super::*;
use crate::io::tar::tests::{archive, header};

/// A protocol-2 pickle of `body` (opcodes between PROTO and STOP).
fn pk(body: &[u8]) -> Vec<u8> {
    [&b"\x80\x02"[..], body, b"."].concat()
}

fn int(i: i32) -> Vec<u8> {
    [&b"J"[..], &i.to_le_bytes()].concat()
}

fn text(s: &str) -> Vec<u8> {
    [&b"X"[..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat()
}

/// A tensor record's raw part: ndim, 4 unused bytes, sizes, strides, offset.
fn dims(ndim: i32, sizes: &[i64], strides: &[i64], offset: i64) -> Vec<u8> {
    let mut v = ndim.to_le_bytes().to_vec();
    v.extend_from_slice(&[0; 4]);
    for x in sizes.iter().chain(strides).chain([&offset]) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

struct Ckpt {
    little_endian: bool,
    storages: Vec<(i32, Vec<f32>)>,
    views: Vec<(i32, i32, i32, i32)>,
    tensors: Vec<(i32, i32, Vec<u8>)>,
    main: Vec<(&'static str, String)>,
}

impl Ckpt {
    /// Storage 1 of 6 floats; views 2 (elements 2..6) of it; tensor 10 = storage 1 as
    /// [2, 3], tensor 11 = view 2 as [2] at offset 1; pickle {"a": 10, "b": 11}.
    fn new() -> Self {
        Ckpt {
            little_endian: true,
            storages: vec![(1, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0])],
            views: vec![(2, 1, 2, 4)],
            tensors: vec![
                (10, 1, dims(2, &[2, 3], &[3, 1], 0)),
                (11, 2, dims(1, &[2], &[1], 1)),
            ],
            main: vec![("a", "10".into()), ("b", "11".into())],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let le: &[u8] = if self.little_endian { b"\x88" } else { b"\x89" };
        let sys = pk(&[&b"}"[..], &text("little_endian"), le, b"s"].concat());
        let mut st = pk(&int(self.storages.len() as i32));
        for (k, data) in &self.storages {
            st.extend(pk(&[
                int(*k),
                text("cpu"),
                b"ctorch\nFloatStorage\n".to_vec(),
                b"\x87".to_vec(),
            ]
            .concat()));
            st.extend_from_slice(&(data.len() as i64).to_le_bytes());
            for x in data {
                st.extend_from_slice(&x.to_le_bytes());
            }
        }
        let mut views = b"](".to_vec();
        for (k, r, o, n) in &self.views {
            views.extend([&b"("[..], &int(*k), &int(*r), &int(*o), &int(*n), b"t"].concat());
        }
        views.push(b'e');
        st.extend(pk(&views));
        let mut ts = pk(&int(self.tensors.len() as i32));
        for (k, s, raw) in &self.tensors {
            ts.extend(pk(&[
                int(*k),
                int(*s),
                b"ctorch\nFloatTensor\n".to_vec(),
                b"\x87".to_vec(),
            ]
            .concat()));
            ts.extend_from_slice(raw);
        }
        let mut main = b"}(".to_vec();
        for (name, key) in &self.main {
            main.extend([text(name), text(key), b"Q".to_vec()].concat());
        }
        main.push(b'u');
        let main = pk(&main);
        archive(&[
            (header("sys_info", sys.len() as u64, b'0'), &sys),
            (header("pickle", main.len() as u64, b'0'), &main),
            (header("tensors", ts.len() as u64, b'0'), &ts),
            (header("storages", st.len() as u64, b'0'), &st),
        ])
    }

    fn read(&self) -> Result<Value> {
        read(&self.bytes(), "t.tar", &mut |t: &str| Ok(t.to_string()))
    }
}

fn floats(t: &TensorValue) -> Vec<f32> {
    t.contiguous_bytes()
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn err(c: &Ckpt, code: &str, text: &str) {
    let e = c.read().unwrap_err();
    assert_eq!(e.code(), code, "{e}");
    assert!(e.to_string().contains(text), "{e}");
}

#[test]
fn reads_tensors_on_storages_and_storage_views() {
    let v = Ckpt::new().read().unwrap();
    let a = v.get("a").unwrap().as_tensor().unwrap();
    assert_eq!(a.shape, [2, 3]);
    assert_eq!(floats(a), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let b = v.get("b").unwrap().as_tensor().unwrap();
    assert_eq!((b.offset, b.storage.numel()), (1, 4));
    assert_eq!(floats(b), [3.0, 4.0]);
}

#[test]
fn big_endian_files_are_unsupported() {
    let mut c = Ckpt::new();
    c.little_endian = false;
    err(&c, "K0005", "big-endian");
}

#[test]
fn negative_sizes_strides_and_offsets_are_k0502() {
    for raw in [
        dims(1, &[-2], &[1], 0),
        dims(1, &[2], &[-1], 0),
        dims(1, &[2], &[1], -1),
    ] {
        let mut c = Ckpt::new();
        c.tensors[0].2 = raw;
        err(&c, "K0502", "negative");
    }
    let mut c = Ckpt::new();
    c.storages[0].1.clear();
    let mut b = c.bytes();
    // The element count of storage 1 is the 8 bytes after its record's STOP.
    let at = find(&b, b"FloatStorage\n\x87.") + 15;
    b[at..at + 8].copy_from_slice(&(-1i64).to_le_bytes());
    let e = read(&b, "t", &mut |t: &str| Ok(t.to_string())).unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(e.to_string().contains("-1 elements"), "{e}");
}

fn find(h: &[u8], n: &[u8]) -> usize {
    h.windows(n.len()).position(|w| w == n).unwrap()
}

#[test]
fn too_many_dimensions_are_k0502() {
    let mut c = Ckpt::new();
    c.tensors[0].2 = dims(65, &[1; 65], &[1; 65], 0);
    err(&c, "K0502", "65 dimensions");
    c.tensors[0].2 = dims(-1, &[], &[], 0);
    err(&c, "K0502", "-1 dimensions");
}

#[test]
fn duplicate_and_unknown_keys_are_k0502() {
    let mut c = Ckpt::new();
    c.storages.push((1, vec![1.0]));
    err(&c, "K0502", "storage key '1' appears twice");
    let mut c = Ckpt::new();
    c.views.push((1, 1, 0, 1));
    err(&c, "K0502", "storage key '1' appears twice");
    let mut c = Ckpt::new();
    c.tensors.push((10, 1, dims(1, &[1], &[1], 0)));
    err(&c, "K0502", "key '10'");
    let mut c = Ckpt::new();
    c.tensors[0].1 = 99;
    err(&c, "K0502", "storage '99'");
    let mut c = Ckpt::new();
    c.main[0].1 = "77".into();
    err(&c, "K0502", "key '77'");
    let mut c = Ckpt::new();
    c.views[0].1 = 5;
    err(&c, "K0502", "of storage '5'");
}

#[test]
fn views_and_tensors_outside_their_storage_are_k0502() {
    let mut c = Ckpt::new();
    c.views[0] = (2, 1, 4, 3);
    err(&c, "K0502", "lies outside storage '1'");
    let mut c = Ckpt::new();
    c.views[0] = (2, 1, -1, 3);
    err(&c, "K0502", "view '2'");
    let mut c = Ckpt::new();
    c.tensors[1].2 = dims(1, &[4], &[1], 1);
    err(&c, "K0502", "tensor '11'");
}

#[test]
fn truncated_records_are_k0501() {
    let mut c = Ckpt::new();
    c.tensors[0].2.truncate(20);
    c.tensors.truncate(1);
    err(&c, "K0501", "member 'tensors'");
}

#[test]
fn pid_keys_may_be_ints_or_padded_strings() {
    let mut c = Ckpt::new();
    c.main[0].1 = " 10".into();
    let v = c.read().unwrap();
    assert_eq!(v.get("a").unwrap().as_tensor().unwrap().shape, [2, 3]);
}

#[test]
fn scan_lists_the_record_globals() {
    let b = Ckpt::new().bytes();
    let budget = Budget::new("t", b.len() as u64, None);
    let g = scan(&b, "t", &budget).unwrap();
    assert!(
        g.contains(&("torch".into(), "FloatStorage".into())),
        "{g:?}"
    );
    assert!(g.contains(&("torch".into(), "FloatTensor".into())), "{g:?}");
}
