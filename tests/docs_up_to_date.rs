//! Generated documentation must match the code.

#[test]
fn errors_md_matches_the_catalog() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = kiln::error::markdown();
    assert!(
        on_disk == generated,
        "docs/errors.md is out of date: regenerate it with `cargo run -- explain --markdown > docs/errors.md`"
    );
}
