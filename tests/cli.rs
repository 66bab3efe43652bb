//! The command line itself: man pages in sync with the clap definitions, completions, usage
//! errors.

mod common;

use std::path::Path;

#[test]
fn man_pages_match_the_command_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::rdbtool(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut generated: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    generated.sort();
    assert!(generated.len() >= 3);
    for name in generated {
        let fresh = std::fs::read(dir.path().join(&name)).unwrap();
        let kept = std::fs::read(committed.join(&name)).unwrap_or_else(|_| {
            panic!(
                "man/{} missing: run `cargo run -- man man`",
                name.to_string_lossy()
            )
        });
        assert!(
            fresh == kept,
            "man/{} is stale: run `cargo run -- man man`",
            name.to_string_lossy()
        );
    }
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = common::rdbtool(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("verify") && text.contains("dump-payload"),
            "{shell}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(common::rdbtool(&["verify"]).status.code(), Some(2));
    assert_eq!(
        common::rdbtool(&["verify", "--format", "xml", "x.rdb"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        common::rdbtool(&["verify", "-", "-"]).status.code(),
        Some(2)
    );
    let out = common::rdbtool(&["verify", "/nonexistent/dump.rdb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ERROR /nonexistent/dump.rdb: No such file")
    );
}
