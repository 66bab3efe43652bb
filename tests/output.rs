//! What commands print: never a server's credentials, counts with their nouns in agreement,
//! and nothing at all (exit 0) when the reader of their output goes away.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::server::{Server, build};

/// Every 4-character piece of `s`.
fn pieces(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.windows(4).map(|w| w.iter().collect()).collect()
}

/// A write that fails names what was written: `-o PATH` or standard output.
#[test]
fn a_full_device_is_named() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    for args in [
        &["export", rdb, "-o", "/dev/full"][..],
        &["export", rdb, "--format", "resp", "-o", "/dev/full"],
        &["diff", rdb, rdb, "--format", "jsonl", "-o", "/dev/full"],
    ] {
        let out = common::rdbtool(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing -o /dev/full: No space left on device"),
            "{args:?}: {stderr}"
        );
    }
    for args in [&["export", rdb][..], &["inspect", rdb, "--keys", "csv"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let out = Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
            .args(args)
            .stdout(full.unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing standard output: No space left on device"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn passwords_are_masked_in_every_message() {
    let rdb = common::testdata("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    // `@ : / # %` as typed (which the URL parser cannot read) and percent-encoded.
    let typed = "pQ@sZ:wK/rJ#xV%y";
    let encoded = "pQ%40sZ%3AwK%2FrJ%23xV%25y";
    let secret: Vec<String> = [pieces(typed), pieces(encoded)].concat();
    for password in [typed, encoded] {
        for user in ["", "bob"] {
            // Nothing listens on port 1.
            let url = format!("redis://{user}:{password}@127.0.0.1:1/0");
            for args in [
                &["diff", rdb, &url][..],
                &["diff", "--format", "jsonl", &url, rdb],
                &["replay", rdb, "--to", &url],
                &["replay", rdb, "--to", &url, "--mode", "restore", "-q"],
                // clap repeats an unexpected argument.
                &["inspect", rdb, &url],
            ] {
                let out = common::rdbtool(args);
                let text = common::printed(&out);
                assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
                assert!(text.contains(&format!("{user}:***@127.0.0.1:1")), "{text}");
                for piece in &secret {
                    assert!(!text.contains(piece.as_str()), "{piece:?} in {text}");
                }
            }
        }
    }
}

#[test]
fn counts_agree_with_their_nouns() {
    let dir = tempfile::tempdir().unwrap();
    let one_db = common::testdata("redis-7.0-lfu.rdb");
    let data = std::fs::read(&one_db).unwrap();
    // One byte short of the checksum.
    let cut = dir.path().join("cut.rdb");
    std::fs::write(&cut, &data[..data.len() - 1]).unwrap();
    let out = common::rdbtool(&["verify", cut.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("needed 1 more byte for"), "{text}");
    assert!(
        text.contains(", 1 db, 9 keys, 1 with TTL, ") && text.ends_with(", 1 error, 0 warnings\n"),
        "{text}"
    );
    let (a, b) = (
        common::testdata("redis-7.0.rdb"),
        common::testdata("redis-6.2.rdb"),
    );
    let out = common::rdbtool(&[
        "diff",
        "--key",
        "stream:main",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("redis-7.0.rdb (1 key)\n"), "{text}");
    assert!(text.contains("\n1 key differs ("), "{text}");
}

/// A dump of the 7.0 fixture plus 4,000 hashes (a big diff against it), saved by Redis 7.0.
fn bigger_dump(dir: &Path) -> PathBuf {
    let fixture = common::testdata("redis-7.0.rdb");
    let server = Server::start(&build("redis-7.0"), Some(&fixture));
    let mut commands = Vec::new();
    for i in 0..4000 {
        let mut c = rdbtool::resp::Command::new("HSET");
        let key = format!("prefix{i}:hash");
        c.arg(key.as_bytes());
        for f in 0..5 {
            c.arg(format!("field{f}").as_bytes());
            c.arg(format!("a value of {i} and {f}").as_bytes());
        }
        c.write_to(&mut commands).unwrap();
    }
    let (errors, _, text) = server.pipe(&commands);
    assert_eq!(errors, 0, "{text}");
    assert_eq!(server.cli(&["SAVE"]).trim(), "OK");
    let to = dir.join("bigger.rdb");
    std::fs::copy(server.dir.path().join("dump.rdb"), &to).unwrap();
    to
}

/// Runs rdbtool ARGS, reads the first bytes of its output and closes the pipe, like `| head -c`:
/// (exit code, stderr).
fn closed_early(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err)
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::testdata("redis-7.0.rdb");
    let a = a.to_str().unwrap();
    let b = bigger_dump(dir.path());
    let b = b.to_str().unwrap();
    for args in [
        &["export", "--format", "json", b][..],
        &["export", "--format", "resp", b],
        &["inspect", "--format", "json", "--depth", "1", b],
        &["inspect", "--keys", "csv", b],
        &["diff", "--format", "jsonl", "--detail", a, b],
        &["diff", "--format", "resp", a, b],
    ] {
        // Far more than a pipe (64 KiB) and the output buffer (8 KiB) hold.
        let all = common::rdbtool(args).stdout.len();
        assert!(all > 100_000, "{args:?}: {all} bytes");
        let (code, err) = closed_early(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn completions_to_a_closed_pipe_or_a_full_disk_do_not_panic() {
    let completions = |shell: &str, stdout: Stdio| {
        Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
            .args(["completions", shell])
            .stdout(stdout)
            .output()
            .unwrap()
    };
    // A pipe whose reader is gone before anything is written: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = completions("bash", writer.into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    // /dev/full, opened for writing only: every write fails with ENOSPC.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = completions("zsh", full.into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
