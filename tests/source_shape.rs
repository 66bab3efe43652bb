//! The shape of the sources: comments that give reasons that stay true (no core count of the
//! machine they were written on, no measurement of a past version: those belong to the
//! benchmark notes), and the command line's files and functions short enough to read.

use std::path::Path;

/// Phrases that tie a comment to one host or one moment.
const DATED: &[&str] = &[
    "both cores",
    "two cores",
    "other core",
    "2-core",
    "% of verify",
    "% of its time",
    "% of the time",
    "% more",
    "% less",
    "% faster",
    "% slower",
    "x faster",
    "x slower",
    "since the refactor",
    "before commit",
    "after commit",
];

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path, found: &mut Vec<(std::path::PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path, text));
        }
    }
}

fn src(under: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(under),
        &mut found,
    );
    found
}

#[test]
fn comments_state_no_host_and_no_past_measurement() {
    let mut found = Vec::new();
    for (path, text) in src("src") {
        for (n, line) in text.lines().enumerate() {
            let Some(at) = line.find("//") else { continue };
            let comment = line[at..].to_lowercase();
            if let Some(phrase) = DATED.iter().find(|p| comment.contains(*p)) {
                found.push(format!(
                    "{}:{}: {phrase:?}: {}",
                    path.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Functions longer than 100 lines that are one flat `match` over the record opcodes or the
/// value items, where one arm a case reads better than a split.
const FLAT_MATCHES: &[(&str, &str)] = &[
    ("src/rdb/reader.rs", "fn record("),
    ("src/export/commands.rs", "fn stream_item("),
    ("src/export/json.rs", "fn stream_item("),
    ("src/diff/fingerprint.rs", "fn item("),
    ("src/diff/collect.rs", "fn item("),
];

/// In `src/`: no file over 600 lines, no function over 100 (but the flat matches above).
#[test]
fn the_sources_are_in_short_pieces() {
    let mut long = Vec::new();
    for (path, text) in src("src") {
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 600 {
            long.push(format!("{}: {} lines", path.display(), lines.len()));
        }
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let code = match code.strip_prefix("pub") {
                Some(rest) => rest.split_once(' ').map_or(code, |(_, after)| after),
                None => code,
            };
            if !code.starts_with("fn ") {
                continue;
            }
            let exception = FLAT_MATCHES
                .iter()
                .any(|(file, f)| path.ends_with(file) && code.starts_with(f));
            let closing = format!("{indent}}}");
            if let Some(end) = lines[i..].iter().position(|l| *l == closing)
                && end + 1 > 100
                && !exception
            {
                long.push(format!(
                    "{}:{}: {} lines: {code}",
                    path.display(),
                    i + 1,
                    end + 1
                ));
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}
