//! Where commands read and write: standard input, pipes and FIFOs read as the file would be, an
//! output that is an input refused, directories and AOF files named for what they are.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::server::{Server, build};

fn bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("rdbtool").unwrap();
    // A reader that waits forever for its input fails the test instead of hanging it.
    cmd.timeout(Duration::from_secs(60));
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    common::testdata(name)
}

/// How the first input of a command is given.
#[derive(Debug, Clone, Copy)]
enum Given {
    Path,
    /// `-`, its bytes on standard input (a pipe).
    Stdin,
    /// A FIFO that `cat` fills.
    Fifo,
}

/// Runs rdbtool with `args`, where `IN` stands for `file` given as `how`.
fn run(how: Given, args: &[&str], file: &Path) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let name = match how {
        Given::Path => file.to_str().unwrap(),
        Given::Stdin => "-",
        Given::Fifo => fifo.to_str().unwrap(),
    };
    let mut cmd = bin();
    cmd.args(args.iter().map(|&a| if a == "IN" { name } else { a }));
    let mut writer = None;
    match how {
        Given::Path => {}
        Given::Stdin => {
            cmd.pipe_stdin(file).unwrap();
        }
        Given::Fifo => {
            assert!(
                Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap()
                    .success()
            );
            let cat = Command::new("sh")
                .args(["-c", "cat \"$0\" > \"$1\""])
                .args([file, &fifo])
                .spawn()
                .unwrap();
            writer = Some(cat);
        }
    }
    let out = cmd.output().unwrap();
    // A reader that never opened the FIFO would leave its writer waiting.
    if let Some(mut w) = writer {
        let _ = w.kill();
        let _ = w.wait();
    }
    out
}

/// stdout, with the file names of `verify --format json` left out.
fn comparable(out: &Output) -> String {
    let stdout = text(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(&stdout) {
        Ok(mut doc) if doc["files"].is_array() => {
            for f in doc["files"].as_array_mut().unwrap() {
                f["file"] = "IN".into();
            }
            doc.to_string()
        }
        _ => stdout,
    }
}

/// The command gives the same output and status whether its input is a path, standard input
/// or a FIFO.
fn same_through_streams(args: &[&str], file: &Path) {
    let direct = run(Given::Path, args, file);
    assert!(
        matches!(direct.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        text(&direct.stderr)
    );
    assert!(!direct.stdout.is_empty(), "{args:?}");
    for how in [Given::Stdin, Given::Fifo] {
        let out = run(how, args, file);
        assert_eq!(
            out.status.code(),
            direct.status.code(),
            "{args:?} with {how:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            comparable(&out),
            comparable(&direct),
            "{args:?} with {how:?}"
        );
    }
}

const NOW: &str = "1700000000000";

#[test]
fn verify_reads_pipes_and_fifos_as_streams() {
    same_through_streams(
        &["verify", "--format", "json", "IN"],
        &fixture("redis-7.0.rdb"),
    );
    // `/dev/stdin` is a path, but to a pipe here.
    let out = run(
        Given::Stdin,
        &["verify", "/dev/stdin"],
        &fixture("redis-7.0.rdb"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout)
            .starts_with("OK /dev/stdin: REDIS0010 (redis-ver 7.0.15), 3 dbs, 55 keys")
    );
}

#[test]
fn inspect_export_and_diff_read_standard_input_and_fifos() {
    let file = fixture("redis-7.0.rdb");
    same_through_streams(&["inspect", "--format", "json", "--now", NOW, "IN"], &file);
    same_through_streams(&["inspect", "--keys", "csv", "--now", NOW, "IN"], &file);
    same_through_streams(&["export", "--now", NOW, "IN"], &file);
    same_through_streams(&["export", "--format", "resp", "--now", NOW, "IN"], &file);
    // Either side of a diff, which reads the keys that differ again.
    let other = fixture("valkey-9.1.rdb");
    let other = other.to_str().unwrap();
    let diff = ["diff", "--format", "jsonl", "--detail", "--now", NOW];
    same_through_streams(&[&diff[..], &["IN", other]].concat(), &file);
    same_through_streams(&[&diff[..], &[other, "IN"]].concat(), &file);
    let twice = run(Given::Stdin, &["diff", "-", "-"], &file);
    assert_eq!(twice.status.code(), Some(2));
    assert!(text(&twice.stderr).contains("standard input (-) can be read only once"));
}

/// Runs `args` (where `OUT` is each of: the input itself, a symlink to it, a hard link to it)
/// and checks each run is refused with exit 2 before the input is touched.
fn refuses_to_write_over(args: &[&str], input: &Path) {
    let before = std::fs::read(input).unwrap();
    let dir = input.parent().unwrap();
    let symlink = dir.join("symlink.rdb");
    let hardlink = dir.join("hardlink.rdb");
    let _ = std::fs::remove_file(&symlink);
    let _ = std::fs::remove_file(&hardlink);
    std::os::unix::fs::symlink(input, &symlink).unwrap();
    std::fs::hard_link(input, &hardlink).unwrap();
    for out in [input, &symlink, &hardlink] {
        let out = out.to_str().unwrap();
        let args: Vec<&str> = args
            .iter()
            .map(|&a| if a == "OUT" { out } else { a })
            .collect();
        let run = bin().args(&args).output().unwrap();
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{out} is the same file as the input"))
                && stderr.contains("refusing to write over it"),
            "{args:?}: {stderr}"
        );
        assert!(
            std::fs::read(input).unwrap() == before,
            "{args:?} changed the input"
        );
    }
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.rdb");
    let b = dir.path().join("b.rdb");
    std::fs::copy(fixture("redis-7.0.rdb"), &a).unwrap();
    std::fs::copy(fixture("valkey-9.1.rdb"), &b).unwrap();
    let (a_, b_) = (a.to_str().unwrap(), b.to_str().unwrap());
    refuses_to_write_over(&["export", a_, "-o", "OUT"], &a);
    refuses_to_write_over(&["export", "--format", "resp", a_, "--output", "OUT"], &a);
    refuses_to_write_over(&["diff", a_, b_, "-o", "OUT"], &a);
    refuses_to_write_over(&["diff", a_, b_, "-o", "OUT"], &b);
    // Before anything is sent (nothing listens on port 1).
    let replay = ["replay", a_, "--to", "redis://127.0.0.1:1"];
    refuses_to_write_over(&[&replay[..], &["--errors-to", "OUT"]].concat(), &a);
    refuses_to_write_over(&[&replay[..], &["--checkpoint", "OUT"]].concat(), &a);
    // Standard input redirected from the output file is an input too.
    let run = Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
        .args(["export", "-", "-o", a_])
        .stdin(std::fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    // Another file is written as before.
    let out = dir.path().join("out.jsonl");
    let run = bin()
        .args(["export", a_, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(std::fs::metadata(&out).unwrap().len() > 1000);
}

#[test]
fn standard_output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.rdb");
    let b = dir.path().join("b.rdb");
    std::fs::copy(fixture("redis-7.0.rdb"), &a).unwrap();
    std::fs::copy(fixture("valkey-9.1.rdb"), &b).unwrap();
    let before = std::fs::read(&a).unwrap();
    let (a_, b_) = (a.to_str().unwrap(), b.to_str().unwrap());
    for args in [
        &["export", a_][..],
        &["inspect", a_],
        &["verify", a_],
        &["diff", b_, a_, "--format", "jsonl"],
        &["replay", a_, "--to", "redis://127.0.0.1:1"],
    ] {
        // `rdbtool ... >> a.rdb`
        let append = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        let run = Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
            .args(args)
            .stdout(append)
            .output()
            .unwrap();
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("standard output is the same file as the input"),
            "{args:?}: {stderr}"
        );
        assert!(std::fs::read(&a).unwrap() == before, "{args:?} changed it");
    }
}

/// A stream is copied to a temporary file only once its first bytes are a signature: an
/// endless stream of zeros fails at once (it used to fill `$TMPDIR`).
#[test]
fn a_stream_that_is_not_an_rdb_file_fails_at_once() {
    let rdb = fixture("redis-7.0.rdb");
    let rdb = rdb.to_str().unwrap();
    for args in [
        &["inspect", "/dev/zero"][..],
        &["export", "/dev/zero"],
        &["diff", "/dev/zero", rdb],
        &["replay", "/dev/zero", "--to", "redis://127.0.0.1:1"],
    ] {
        let started = std::time::Instant::now();
        let out = bin().args(args).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(started.elapsed() < Duration::from_secs(1), "{args:?}");
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(r#"/dev/zero: at byte 0: not an RDB file: bad signature"#),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = bin().args(["verify", d]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ERROR {d}: is a directory without an AOF manifest (*.manifest) in it, not a file\n"
        )
    );
    for cmd in ["inspect", "export"] {
        let out = bin().args([cmd, d]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr),
            format!("rdbtool: {d}: is a directory, not a file\n")
        );
    }
}

/// A signature is escaped once, byte by byte, as keys are: no doubled backslashes, no U+FFFD.
#[test]
fn a_bad_signature_is_escaped_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.rdb");
    std::fs::write(&path, b"\0\0\xff\xfeab\"\\c rest of the file").unwrap();
    let out = bin()
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(r#"not an RDB file: bad signature "\0\0\xFF\xFEab\"\\c" (while header)"#),
        "{stdout}"
    );
}

/// The files of a real appendonlydir (Redis 7.0, timestamps on): verify checks the manifest
/// and the incremental AOF as an AOF and says so; the base file is an RDB file.
#[test]
fn aof_files_are_named_as_such() {
    let server = Server::start_with(
        &build("redis-7.0"),
        None,
        &["--appendonly", "yes", "--aof-timestamp-enabled", "yes"],
    );
    server.cli(&["SET", "k", "v"]);
    server.cli(&["RPUSH", "l", "a", "b"]);
    let aof_dir = server.dir.path().join("appendonlydir");
    let file = |suffix: &str| -> PathBuf {
        std::fs::read_dir(&aof_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {}", aof_dir.display()))
    };
    for (suffix, found) in [
        (
            ".manifest",
            "AOF: appendonlydir with manifest, base (RDB) + 1 incr file",
        ),
        (".incr.aof", "AOF: a single file, RESP"),
    ] {
        let path = file(suffix);
        let out = bin()
            .args(["verify", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains(found), "{stdout}");
    }
    let base = file(".base.rdb");
    let out = bin()
        .args(["verify", base.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Commands without the annotation.
    let path = server.dir.path().join("plain.aof");
    std::fs::write(&path, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").unwrap();
    let out = bin()
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("AOF: a single file, RESP, 1 command"),
        "{}",
        text(&out.stdout)
    );
    // diff could not read it as an RDB file (2); inspect and export read it as an AOF, and
    // say so.
    let p = path.to_str().unwrap();
    let rdb = fixture("redis-7.0.rdb");
    let out = bin()
        .args(["diff", p, rdb.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "diff: {stderr}");
    assert!(stderr.contains("looks like an AOF"), "diff: {stderr}");
    for args in [&["inspect", p][..], &["export", p]] {
        let out = bin().args(args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            stderr.contains("AOF: a single file, RESP"),
            "{args:?}: {stderr}"
        );
    }
}

/// A DUMP payload made by a real server, on standard input (this used to wait forever).
#[test]
fn a_dump_payload_is_read_from_standard_input() {
    let server = Server::start(&build("redis-7.0"), None);
    server.cli(&["HSET", "h", "f1", "v1", "f2", "v2"]);
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", server.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("h").query(&mut conn).unwrap();
    let out = bin()
        .args(["verify", "--dump-payload", "-"])
        .write_stdin(payload.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("OK -: DUMP payload v10"),
        "{}",
        text(&out.stdout)
    );
    // A damaged one from the same place is a problem, found.
    let mut bad = payload;
    bad[1] ^= 0x55;
    let out = bin()
        .args(["verify", "--dump-payload", "-"])
        .write_stdin(bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// Writes a valid dump holding one string of `len` bytes (checksum disabled).
fn write_big_dump(path: &Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"REDIS0010\xfe\x00\x00\x03big\x80").unwrap();
    f.write_all(&(len as u32).to_be_bytes()).unwrap();
    let chunk = vec![b'v'; 1 << 20];
    for _ in 0..len >> 20 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b"\xff\0\0\0\0\0\0\0\0").unwrap();
    f.flush().unwrap();
}

/// Truncates `path` as soon as the process `child` has mapped it (seen in /proc/PID/maps),
/// so that what it reads next is gone; returns its output. None if it ended before it was
/// seen with the file mapped (a busy machine).
fn truncate_once_mapped(mut child: std::process::Child, path: &Path) -> Option<Output> {
    let maps = format!("/proc/{}/maps", child.id());
    let name = path.to_str().unwrap();
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(name)) {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::yield_now();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

/// A file truncated by another process while it is read: a message naming it and exit 2,
/// never a death by SIGBUS. Whether the reader then touches a lost page (the signal) or has
/// just finished (the size check at the end), the outcome is the same.
#[test]
fn a_file_that_shrinks_while_read_is_reported_not_a_signal_death() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap().join("big.rdb");
    let name = path.to_str().unwrap();
    for args in [
        &["verify", name][..],
        &["verify", "--format", "json", name],
        &["inspect", "--format", "json", name],
        &["export", "--format", "resp", name],
    ] {
        let out = (0..5)
            .find_map(|_| {
                write_big_dump(&path, 256 << 20);
                let child = Command::new(assert_cmd::cargo::cargo_bin("rdbtool"))
                    .args(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                truncate_once_mapped(child, &path)
            })
            .expect("never seen with the file mapped");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.signal(), None, "{args:?}: {all}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(
            all.contains(&format!("{name}: changed size while being read")),
            "{args:?}: {all}"
        );
    }
}
