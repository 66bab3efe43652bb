//! Golden files for inspect's table and JSON output on a fixture (`RDBTOOL_UPDATE_GOLDEN=1`
//! rewrites them after an intended change; review the diff).

mod common;

use std::path::Path;

/// The fixture's TTLs lie in 2100; measured from a fixed "now" the output never changes.
const NOW: &str = "1795316022000";

fn check(args: &[&str], golden: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = assert_cmd::Command::cargo_bin("rdbtool")
        .unwrap()
        .current_dir(root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = root.join("tests/golden").join(golden);
    if std::env::var_os("RDBTOOL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &out.stdout).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
    let got = String::from_utf8(out.stdout).unwrap();
    assert!(
        got == expected,
        "output differs from {}:\n{got}",
        path.display()
    );
}

#[test]
fn table_report() {
    check(
        &["inspect", "--now", NOW, "testdata/redis-7.0.rdb"],
        "inspect-redis-7.0.txt",
    );
}

#[test]
fn json_report() {
    check(
        &[
            "inspect",
            "--now",
            NOW,
            "--format",
            "json",
            "--top",
            "3",
            "testdata/redis-7.0.rdb",
        ],
        "inspect-redis-7.0.json",
    );
}

#[test]
fn key_rows_as_csv() {
    check(
        &[
            "inspect",
            "--keys",
            "csv",
            "--db",
            "1",
            "--db",
            "5",
            "testdata/redis-7.0.rdb",
        ],
        "inspect-keys-db1-db5.csv",
    );
}
