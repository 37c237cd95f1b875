//! CSV tables: numeric feature columns and one target column.
//!
//! The header row names the columns (kept as `feature_names`). Targets are class names
//! (sorted; integer names numerically, others as strings) unless the task is regression,
//! where they are `f32`. Without an explicit task, a target column of numbers that are not
//! all integers is regression; anything else is classification. Lines longer than the
//! bound are refused before parsing (no unbounded buffer).

use super::memory::{MemoryDataset, Targets, Values};
use crate::data::dataset::Task;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Longest line a CSV may have, in bytes, by default.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A parsed CSV table.
#[derive(Debug)]
pub struct CsvTable {
    /// The data set (`[features]` samples).
    pub dataset: MemoryDataset,
    /// Feature column names, in file order.
    pub feature_names: Vec<String>,
    /// The target column's name.
    pub target: String,
    /// Class names (empty for regression).
    pub classes: Vec<String>,
    /// Classification or regression.
    pub task: Task,
}

fn cell_err(path: &Path, line: u64, column: usize, header: &str, detail: String) -> Error {
    Error::CsvCell {
        path: path.display().to_string(),
        line,
        column,
        header: header.to_string(),
        detail,
    }
}

/// Refuses a file with a line longer than `max` bytes (streaming, bounded memory).
fn check_line_lengths(path: &Path, max: usize) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut r = std::io::BufReader::new(f);
    let mut buf = [0u8; 1 << 16];
    let (mut line, mut len) = (1u64, 0usize);
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            return Ok(());
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                line += 1;
                len = 0;
            } else {
                len += 1;
                if len > max {
                    return Err(cell_err(
                        path,
                        line,
                        0,
                        "",
                        format!("the line is longer than the limit of {max} bytes"),
                    ));
                }
            }
        }
    }
}

/// Reads `path` with `target` as the target column.
///
/// # Errors
/// `K0002` unreadable; `K0106` a bad cell, a short or long row, or a line over
/// `max_line_bytes` (with line and column); `K0103` no such target column or no row.
pub fn read_csv(
    path: &Path,
    target: &str,
    task: Option<Task>,
    max_line_bytes: usize,
) -> Result<CsvTable> {
    check_line_lengths(path, max_line_bytes)?;
    let name = path.display().to_string();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| Error::BadData {
            source_name: name.clone(),
            detail: e.to_string(),
        })?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| cell_err(path, 1, 0, "", e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let Some(t_col) = headers.iter().position(|h| h == target) else {
        return Err(Error::BadData {
            source_name: name,
            detail: format!("no target column '{target}'; the header has {headers:?}"),
        });
    };
    let feature_names: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != t_col)
        .map(|(_, h)| h.clone())
        .collect();
    let mut features = Vec::new();
    let mut raw_targets: Vec<(String, u64)> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            cell_err(path, line, 0, "", e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue; // a blank line
        }
        if rec.len() != headers.len() {
            return Err(cell_err(
                path,
                line,
                rec.len().min(headers.len()) + 1,
                headers.get(rec.len()).map_or("", |s| s.as_str()),
                format!("{} fields, the header has {}", rec.len(), headers.len()),
            ));
        }
        for (i, cell) in rec.iter().enumerate() {
            if i == t_col {
                raw_targets.push((cell.trim().to_string(), line));
                continue;
            }
            let v: f32 = cell.trim().parse().map_err(|_| {
                cell_err(
                    path,
                    line,
                    i + 1,
                    &headers[i],
                    format!("'{cell}' is not a number"),
                )
            })?;
            features.push(v);
        }
    }
    if raw_targets.is_empty() {
        return Err(Error::BadData {
            source_name: name,
            detail: "no data row after the header".into(),
        });
    }
    let numeric: Option<Vec<f64>> = raw_targets
        .iter()
        .map(|(s, _)| s.parse::<f64>().ok())
        .collect();
    let task = task.unwrap_or(match &numeric {
        Some(v) if v.iter().any(|x| x.fract() != 0.0) => Task::Regression,
        _ => Task::Classification,
    });
    let d = feature_names.len();
    let (targets, classes) = match task {
        Task::Regression => {
            let mut data = Vec::with_capacity(raw_targets.len());
            for (s, line) in &raw_targets {
                let v: f32 = s.parse().map_err(|_| {
                    cell_err(
                        path,
                        *line,
                        t_col + 1,
                        target,
                        format!("'{s}' is not a number (task regression)"),
                    )
                })?;
                data.push(v);
            }
            (
                Targets::Values {
                    data,
                    shape: vec![],
                },
                Vec::new(),
            )
        }
        Task::Classification => {
            let mut classes: Vec<String> = raw_targets.iter().map(|(s, _)| s.clone()).collect();
            let ints: Option<Vec<i64>> = classes.iter().map(|s| s.parse::<i64>().ok()).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                ints.dedup();
                classes = ints.iter().map(|i| i.to_string()).collect();
            } else {
                classes.sort();
                classes.dedup();
            }
            let labels = raw_targets
                .iter()
                .map(|(s, _)| {
                    let key = s
                        .parse::<i64>()
                        .map(|i| i.to_string())
                        .unwrap_or_else(|_| s.clone());
                    classes
                        .iter()
                        .position(|c| *c == key)
                        .map_or(0, |p| p as i64)
                })
                .collect();
            (Targets::Labels(labels), classes)
        }
    };
    let dataset = MemoryDataset::new(name, Values::F32(features), &[d], targets)?;
    Ok(CsvTable {
        dataset,
        feature_names,
        target: target.to_string(),
        classes,
        task,
    })
}
