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

/// Non-blank, non-comment lines of `text` from the first line starting with `from` (included)
/// to the first later line starting with `to` (excluded).
fn code_lines(text: &str, from: &str, to: &str) -> usize {
    let start = text.lines().position(|l| l.starts_with(from)).expect(from);
    text.lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with(to))
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//") && !t.starts_with('#') || t.starts_with("#[")
        })
        .count()
        + 1
}

/// The line counts docs/GUIDE.md and examples/custom_model.rs state are those of the code:
/// `Block` + `Net` with constructors and forward in Rust against their PyTorch twins.
#[test]
fn guide_line_count_is_measured() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let rust = read("examples/custom_model.rs");
    // From Block's derive to TextClf's (the third derive in the file).
    let tail = &rust[rust.find("#[derive(Module)]\nstruct Block").unwrap()..];
    let end = tail.find("#[derive(Module)]\nstruct TextClf").unwrap();
    let rust_lines = code_lines(&tail[..end], "#[derive(Module)]", "\u{0}");
    let py = read("scripts/custom_model_twin.py");
    let py_lines = code_lines(&py, "class Block", "class TextClf");
    let ratio = format!("{:.2}", rust_lines as f64 / py_lines as f64);
    println!("Block + Net: {rust_lines} lines of Rust, {py_lines} of Python, ratio {ratio}");
    let guide = read("docs/GUIDE.md").replace('\n', " ");
    for (what, text) in [
        ("docs/GUIDE.md", &guide),
        ("examples/custom_model.rs", &rust.replace("\n//", "")),
    ] {
        assert!(
            text.contains(&format!("are {rust_lines} non-blank"))
                || text.contains(&format!("= {rust_lines} non-blank")),
            "{what} does not state {rust_lines} Rust lines"
        );
        assert!(
            text.contains(&format!("{py_lines}")),
            "{what} does not state {py_lines} Python lines"
        );
        assert!(
            text.contains(&ratio),
            "{what} does not state the ratio {ratio}"
        );
    }
}
