//! AOFs written by real servers for the AOF tests: a server with `appendonly yes`, a scripted
//! workload (every data type, MULTI/EXEC, Lua, functions, expiries), rewrites that finish or
//! fail (a new incr file each), and `redis-check-aof`'s verdict to compare with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::server::{Build, Server, build, redis_cli};

/// Starts `name` writing an AOF (fsynced at every write, so the files are whole when a reply
/// comes), with `extra` configuration.
pub fn start(name: &str, extra: &[&str]) -> (Build, Server) {
    let b = build(name);
    let mut args = vec!["--appendonly", "yes", "--appendfsync", "always"];
    args.extend_from_slice(extra);
    let server = Server::start_with(&b, None, &args);
    (b, server)
}

/// Sends `lines` (redis-cli syntax, one command each) on one connection; returns the replies.
pub fn send(server: &Server, lines: &[&str]) -> String {
    let mut child = Command::new(redis_cli())
        .args(["-p", &server.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = lines.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes of every kind, tagged with `tag` so that runs add keys; functions where the server
/// has them (7.0+).
pub fn workload(server: &Server, tag: &str, functions: bool) {
    let lines = workload_lines(tag, functions);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = send(server, &refs);
    assert!(!replies.contains("ERR"), "{replies}");
}

/// The commands of [`workload`]: deterministic (absolute expiry times, explicit stream IDs),
/// so that another server running them holds the same data.
pub fn workload_lines(tag: &str, functions: bool) -> Vec<String> {
    let mut lines: Vec<String> = [
        "SET str:{t} v",
        "SET counter:{t} 10",
        "INCRBY counter:{t} 5",
        "APPEND str:{t} more",
        "SET ttl:{t} x PXAT 4102444800000",
        "PEXPIREAT str:{t} 4102444800123",
        "RPUSH list:{t} a b c",
        "LPOP list:{t}",
        "SADD set:{t} a b c",
        "SREM set:{t} b",
        "ZADD zset:{t} 1 a 2 b",
        "ZINCRBY zset:{t} 3 a",
        "HSET hash:{t} f1 v1 f2 v2",
        "HDEL hash:{t} f2",
        "XADD stream:{t} 1-1 f v",
        "XADD stream:{t} 2-1 g w",
        "SETBIT bits:{t} 7 1",
        "PFADD hll:{t} a b c",
        "EXPIREAT list:{t} 4102444800",
        "SELECT 2",
        "SET db2:{t} v",
        "SELECT 0",
        "MULTI",
        "SET m1:{t} 1",
        "INCR m2:{t}",
        "LPUSH mlist:{t} x",
        "EXEC",
        "EVAL \"redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])\" 2 lua1:{t} lua2:{t} v",
    ]
    .iter()
    .map(|l| l.replace("{t}", tag))
    .collect();
    if functions {
        lines.push(
            "FUNCTION LOAD REPLACE \"#!lua name=lib\\nredis.register_function('myset', function(keys, args) return redis.call('set', keys[1], args[1]) end)\""
                .to_string(),
        );
        lines.push(format!("FCALL myset 1 fkey:{tag} fval"));
    }
    lines
}

fn persistence(server: &Server, field: &str) -> String {
    let info = server.cli(&["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits until no AOF rewrite runs or is scheduled.
pub fn wait_rewrite(server: &Server) {
    let start = Instant::now();
    while persistence(server, "aof_rewrite_in_progress") != "0"
        || persistence(server, "aof_rewrite_scheduled") != "0"
    {
        assert!(start.elapsed() < Duration::from_secs(30), "rewrite hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// BGREWRITEAOF, to its end: a new base (and, from 7.0, a new incr file).
pub fn rewrite(server: &Server) {
    wait_rewrite(server);
    let reply = server.cli(&["BGREWRITEAOF"]);
    assert!(reply.contains("rewriting"), "{reply}");
    wait_rewrite(server);
    assert_eq!(persistence(server, "aof_last_bgrewrite_status"), "ok");
}

/// A BGREWRITEAOF whose child is killed: 7.0+ leaves the incr file it opened, so the manifest
/// lists one more.
pub fn failed_rewrite(server: &Server) {
    wait_rewrite(server);
    server.cli(&["CONFIG", "SET", "rdb-key-save-delay", "1000000"]);
    server.cli(&["BGREWRITEAOF"]);
    kill_rewrite_child(server);
    wait_rewrite(server);
    server.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
}

/// Kills (-9) the server's child processes (a rewrite in progress) once there is one.
pub fn kill_rewrite_child(server: &Server) {
    let pid = server_pid(server);
    let start = Instant::now();
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if !children.trim().is_empty() {
            for child in children.split_whitespace() {
                Command::new("kill").args(["-9", child]).status().unwrap();
            }
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no rewrite child"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn server_pid(server: &Server) -> String {
    let info = server.cli(&["INFO", "server"]);
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The appendonlydir of a 7.0+ server.
pub fn aof_dir(server: &Server) -> PathBuf {
    server.dir.path().join("appendonlydir")
}

/// The `redis-check-aof` (or `valkey-check-aof`) of a build, from servers.json.
pub fn check_aof(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/servers/servers.json");
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("server {name} not installed"));
    let tool = entry["check_aof"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no check-aof"));
    PathBuf::from(tool)
}

/// What `redis-check-aof` printed of each file it analyzed: (file name, size, ok_up_to,
/// ok_up_to_line), and whether it called the whole input valid.
pub fn analyzed(tool: &Path, input: &Path) -> (Vec<(String, u64, u64, u64)>, bool) {
    let out = Command::new(tool).arg(input).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("AOF analyzed: ") else {
            continue;
        };
        let field = |name: &str| {
            rest.split(", ")
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        let num = |name: &str| field(name).parse::<u64>().unwrap();
        let file = Path::new(&field("filename"))
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        files.push((file, num("size"), num("ok_up_to"), num("ok_up_to_line")));
    }
    (files, out.status.success())
}

/// Copies the files of `from` into a new temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

/// A server of `name` that loaded the appendonlydir `dir` at start-up.
pub fn load_dir(name: &str, dir: &Path) -> Server {
    let parent = dir.parent().unwrap().to_str().unwrap();
    let base = dir.file_name().unwrap().to_str().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--dir",
        parent,
        "--appenddirname",
        base,
    ];
    Server::start_with(&build(name), None, &args)
}

/// A fresh server of `name` (no AOF) that ran `lines`.
pub fn ran(name: &str, lines: &[String]) -> Server {
    let server = Server::start(&build(name), None);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = send(&server, &refs);
    assert!(!replies.contains("ERR"), "{replies}");
    server
}

/// Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sleeps until the Unix second after `t` has begun.
pub fn after_second(t: u64) {
    while now() <= t {
        std::thread::sleep(Duration::from_millis(20));
    }
}
