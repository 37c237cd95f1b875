//! Scans the library's source for panicking calls reachable from user input.
//!
//! Library code (everything under `src/` outside `#[cfg(test)]` modules and doc comments)
//! must not call `.unwrap()`, `.expect(`, `panic!`, `unreachable!`, `todo!` or
//! `unimplemented!`. The few exceptions are listed in `ALLOWED` with the reason they cannot
//! trigger; each must still be present (a stale exception fails the test too).

use std::path::{Path, PathBuf};

/// (file suffix, exact line content after trimming, why it cannot panic)
const ALLOWED: &[(&str, &str, &str)] = &[];

const FORBIDDEN: [&str; 6] = [
    ".unwrap()",
    ".expect(",
    "panic!(",
    "unreachable!(",
    "todo!(",
    "unimplemented!(",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Library lines of a file: drops `#[cfg(test)]` items (to their closing brace), comments
/// and string-only lines.
fn library_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut skip_depth: Option<i64> = None;
    let mut pending_cfg_test = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += raw.matches('{').count() as i64 - raw.matches('}').count() as i64;
            if *depth <= 0 && raw.contains('}') {
                skip_depth = None;
            }
            continue;
        }
        if line.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            let opens = raw.matches('{').count() as i64 - raw.matches('}').count() as i64;
            if opens > 0 {
                skip_depth = Some(opens);
            }
            pending_cfg_test = line.starts_with("#[") || opens == 0 && !line.ends_with(';');
            if line.ends_with(';') {
                pending_cfg_test = false;
            }
            continue;
        }
        if line.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(pos) if !line[..pos].contains('"') => &line[..pos],
            _ => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// Files declared as `#[cfg(test)] mod name;` are test-only as a whole.
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, w) in lines.windows(2).enumerate() {
            if w[0] != "#[cfg(test)]" {
                continue;
            }
            // `#[cfg(test)] #[path = "x_tests.rs"] mod tests;`: the path is relative to the
            // directory of the declaring file.
            if let Some(p) = w[1]
                .strip_prefix("#[path = \"")
                .and_then(|r| r.strip_suffix("\"]"))
            {
                if lines
                    .get(i + 2)
                    .is_some_and(|l| l.contains("mod ") && l.ends_with(';'))
                {
                    out.push(f.parent().unwrap().join(p));
                }
                continue;
            }
            let Some(name) = w[1].strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            let dir = f.parent().unwrap();
            let stem = f.file_stem().unwrap().to_string_lossy();
            let base = if stem == "mod" || stem == "lib" || stem == "main" {
                dir.to_path_buf()
            } else {
                dir.join(stem.as_ref())
            };
            out.push(base.join(format!("{name}.rs")));
            out.push(base.join(name).join("mod.rs"));
        }
    }
    out
}

#[test]
fn library_code_has_no_panicking_calls() {
    // The library and the `kiln` command.
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = [ws.join("crates/kiln/src"), ws.join("src")];
    let mut files = Vec::new();
    for root in &roots {
        rust_files(root, &mut files);
    }
    files.sort();
    let test_only = test_only_files(&files);
    files.retain(|f| !test_only.contains(f));
    assert!(files.len() > 20, "scanned too few files: {}", files.len());
    let mut found = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in library_lines(&text) {
            if !FORBIDDEN.iter().any(|p| line.contains(p)) {
                continue;
            }
            let rel = f.strip_prefix(ws).unwrap().display().to_string();
            match ALLOWED
                .iter()
                .position(|(file, l, _)| rel.ends_with(file) && line.trim() == *l)
            {
                Some(i) => used[i] = true,
                None => found.push(format!("{rel}:{n}: {}", line.trim())),
            }
        }
    }
    assert!(
        found.is_empty(),
        "panicking calls in library code:\n{}",
        found.join("\n")
    );
    for (i, u) in used.iter().enumerate() {
        assert!(*u, "stale exception in ALLOWED: {:?}", ALLOWED[i]);
    }
}

#[test]
fn scanner_skips_test_modules_and_finds_unwraps() {
    let text = "fn a() { x.unwrap(); }\n#[cfg(test)]\nmod tests {\n    fn b() { y.unwrap(); }\n}\nfn c() { z.expect(\"no\"); }\n";
    let lines: Vec<String> = library_lines(text)
        .into_iter()
        .filter(|(_, l)| FORBIDDEN.iter().any(|p| l.contains(p)))
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(lines, ["1", "6"]);
}
