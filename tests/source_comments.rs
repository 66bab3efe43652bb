//! The sources' comments give reasons that stay true: no core count of the machine they were
//! written on, no measurement of a past version (those belong to the benchmark notes).

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

fn comments(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            comments(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
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
}

#[test]
fn comments_state_no_host_and_no_past_measurement() {
    let mut found = Vec::new();
    comments(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}
