use super::*;

/// A ustar header for `name` of `size` bytes and type `flag`, checksum set.
pub(crate) fn header(name: &str, size: u64, flag: u8) -> Vec<u8> {
    let mut h = vec![0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    seal(&mut h);
    h
}

/// Recomputes a header's checksum.
pub(crate) fn seal(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// An archive of `(header, data)` pairs, data padded to blocks, then two zero blocks.
pub(crate) fn archive(parts: &[(Vec<u8>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, d) in parts {
        out.extend_from_slice(h);
        out.extend_from_slice(d);
        out.resize(padded(out.len()).unwrap(), 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn pax_record(k: &str, v: &str) -> String {
    let body = format!(" {k}={v}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}")
}

#[test]
fn reads_two_members_as_byte_ranges() {
    let a = archive(&[
        (header("a", 3, b'0'), b"abc"),
        (header("dir/", 0, b'5'), b""),
        (header("b", 600, b'0'), &[7u8; 600]),
    ]);
    let m = members(&a, "t.tar").unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!((m[0].name.as_str(), m[0].data(&a)), ("a", &b"abc"[..]));
    assert_eq!(m[1].kind, Kind::Dir);
    assert_eq!(m[2].data(&a), &[7u8; 600][..]);
    assert_eq!(m[2].start, 4 * BLOCK);
    assert!(looks_like(&a));
}

#[test]
fn ustar_prefix_is_joined_to_the_name() {
    let mut h = header("storages", 1, b'0');
    h[345..349].copy_from_slice(b"ckpt");
    seal(&mut h);
    let a = archive(&[(h, b"x")]);
    assert_eq!(members(&a, "t").unwrap()[0].name, "ckpt/storages");
}

#[test]
fn gnu_long_name_names_the_next_member() {
    let long = "x".repeat(150);
    let a = archive(&[
        (
            header("././@LongLink", long.len() as u64 + 1, b'L'),
            &[long.as_bytes(), b"\0"].concat(),
        ),
        (header("xxx", 2, b'0'), b"hi"),
    ]);
    let m = members(&a, "t").unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].name, long);
}

#[test]
fn pax_path_and_size_override_the_header() {
    let rec = pax_record("path", "pickle") + &pax_record("size", "5") + &pax_record("mtime", "1.5");
    let a = archive(&[
        (
            header("./PaxHeaders/x", rec.len() as u64, b'x'),
            rec.as_bytes(),
        ),
        // The ustar size field says 0: the PAX size wins.
        (header("ignored", 0, b'0'), b"hello"),
        (header("next", 1, b'0'), b"z"),
    ]);
    let m = members(&a, "t").unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].name.as_str(), m[0].data(&a)),
        ("pickle", &b"hello"[..])
    );
    assert_eq!((m[1].name.as_str(), m[1].data(&a)), ("next", &b"z"[..]));
}

#[test]
fn base256_size_is_read() {
    let mut h = header("big", 0, b'0');
    h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    seal(&mut h);
    let a = archive(&[(h, b"four")]);
    assert_eq!(members(&a, "t").unwrap()[0].len, 4);
    let mut h = header("neg", 0, b'0');
    h[124..136].copy_from_slice(&[0xff; 12]);
    seal(&mut h);
    let e = members(&archive(&[(h, b"")]), "t").unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(e.to_string().contains("negative"), "{e}");
}

#[test]
fn a_bad_checksum_is_k0502_and_a_non_tar_is_k0503() {
    let mut a = archive(&[(header("a", 1, b'0'), b"a"), (header("b", 1, b'0'), b"b")]);
    a[2 * BLOCK + 5] ^= 1;
    let e = members(&a, "t.tar").unwrap_err();
    assert_eq!(e.code(), "K0502");
    assert!(e.to_string().contains("byte 1024"), "{e}");
    let e = members(&[1u8; 1024], "t").unwrap_err();
    assert_eq!(e.code(), "K0503", "{e}");
    assert!(!looks_like(&[1u8; 1024]));
    assert!(!looks_like(&[0u8; 1024]));
}

#[test]
fn data_past_the_end_is_k0501() {
    let a = archive(&[(header("a", 100, b'0'), &[1u8; 100])]);
    let e = members(&a[..BLOCK + 50], "t").unwrap_err();
    assert_eq!(e.code(), "K0501");
    assert!(e.to_string().contains("100 bytes"), "{e}");
    let e = members(&a[..300], "t").unwrap_err();
    assert_eq!(e.code(), "K0501");
    let huge = archive(&[(header("a", 0o77777777777, b'0'), b"")]);
    assert_eq!(members(&huge, "t").unwrap_err().code(), "K0501");
}

#[test]
fn an_archive_without_end_blocks_ends_at_the_end_of_the_file() {
    let a = archive(&[(header("a", 1, b'0'), b"a")]);
    assert_eq!(members(&a[..2 * BLOCK], "t").unwrap().len(), 1);
    // An extended header whose member is missing.
    let rec = pax_record("path", "p");
    let a = archive(&[(header("x", rec.len() as u64, b'x'), rec.as_bytes())]);
    assert_eq!(members(&a[..2 * BLOCK], "t").unwrap_err().code(), "K0501");
}

#[test]
fn malformed_pax_records_are_k0502() {
    for rec in ["junk", "99 path=x\n", "5 a\n"] {
        let a = archive(&[
            (header("x", rec.len() as u64, b'x'), rec.as_bytes()),
            (header("a", 0, b'0'), b""),
        ]);
        assert_eq!(members(&a, "t").unwrap_err().code(), "K0502", "{rec:?}");
    }
}

#[test]
fn python_tarfile_formats_read_alike() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/io/tar");
    let mut seen = Vec::new();
    for f in ["state_dict.tar", "state_dict_gnu.tar", "state_dict_pax.tar"] {
        let data = std::fs::read(dir.join(f)).unwrap();
        let m = members(&data, f).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["sys_info", "pickle", "tensors", "storages"], "{f}");
        seen.push(m.iter().map(|m| m.data(&data).to_vec()).collect::<Vec<_>>());
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}
