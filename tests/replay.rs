//! `rdbtool replay` against real servers: every fixture into a fresh server of the version that
//! wrote it (both modes, DEBUG DIGEST equal to the server that loaded the file); a key over the
//! target's proto-max-bulk-len; a target killed mid-replay and resumed from the checkpoint; a
//! real 3-master cluster, with and without a slot migration running during the replay, and one
//! with replicas where a master fails over to its replica during the replay.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::replay;
use common::server::{Build, Server, build, redis_cli};
use rdbtool::replay::slots::key_slot;
use rdbtool::resp;

fn rdbtool_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rdbtool"))
}

fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port)
}

/// `n` bytes that LZF cannot compress (xorshift from `seed`).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fixture_round_trip(name: &str, fixture: &str) {
    let b = build(name);
    let rdb = common::testdata(fixture);
    let source = Server::start(&b, Some(&rdb));
    let want = source.digest();
    assert_ne!(want, "0".repeat(40), "{name}: nothing loaded");
    for mode in ["restore", "commands"] {
        let target = Server::start(&b, None);
        // Native commands cannot set a key's LFU counter: the keys are sent all the same (it is
        // eviction state, not data) and the loss is said.
        let lossy = mode == "commands" && fixture.contains("-lfu");
        let (code, out, err) = replay(&rdb, &url(&target), &["--mode", mode]);
        assert_eq!(code, 0, "{name} {mode}: {out}{err}");
        assert!(out.contains("error replies: 0,"), "{name} {mode}: {out}");
        assert_eq!(
            out.contains("sent without what the target cannot hold: lru-lfu"),
            lossy,
            "{out}"
        );
        assert_eq!(
            target.digest(),
            want,
            "{name} {mode}: digests differ\n{out}"
        );
    }
}

#[test]
fn fixtures_of_every_version_replay_exactly() {
    for (name, fixture) in [
        ("redis-3.2", "redis-3.2.rdb"),
        ("redis-5.0", "redis-5.0.rdb"),
        ("redis-6.0", "redis-6.0.rdb"),
        ("redis-6.2", "redis-6.2.rdb"),
        ("redis-7.0", "redis-7.0.rdb"),
        ("redis-7.0", "redis-7.0-lfu.rdb"),
        ("redis-8.2", "redis-8.2.rdb"),
        ("valkey-8.1", "valkey-8.1.rdb"),
        ("valkey-9.1", "valkey-9.1.rdb"),
    ] {
        fixture_round_trip(name, fixture);
    }
}

#[test]
fn existing_keys_fail_skip_or_are_replaced() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let want = Server::start(&b, Some(&rdb)).digest();
    for mode in ["restore", "commands"] {
        let target = Server::start(&b, None);
        target.cli(&["SET", "str:short", "mine"]);
        let dir = tempfile::tempdir().unwrap();
        let errors = dir.path().join("errors.jsonl");
        let (code, out, _) = replay(
            &rdb,
            &url(&target),
            &[
                "--mode",
                mode,
                "--now",
                "0",
                "--errors-to",
                errors.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 1, "{mode}: an existing key is a failure\n{out}");
        assert_eq!(target.cli(&["GET", "str:short"]).trim(), "mine", "{mode}");
        let lines = std::fs::read_to_string(&errors).unwrap();
        assert_eq!(lines.lines().count(), 1, "{mode}: {lines}");
        let e: serde_json::Value = serde_json::from_str(lines.trim()).unwrap();
        assert_eq!(e["key"], "str:short");
        assert!(e["error"].as_str().unwrap().starts_with("BUSYKEY"), "{e}");
        assert!(
            target.cli(&["KEYS", "*rdbtool-tmp*"]).trim().is_empty(),
            "{mode}: temporary key left"
        );

        let (code, out, _) = replay(
            &rdb,
            &url(&target),
            &["--mode", mode, "--on-exists", "skip"],
        );
        assert_eq!(code, 0, "{mode}: {out}");
        // 55 keys and 2 function libraries, all there since the first run.
        assert!(
            out.contains("keys: 55 read, 55 sent, 0 acknowledged"),
            "{out}"
        );
        assert!(out.contains("skipped keys: 55 existing"), "{out}");
        assert!(
            out.contains("libraries: 2 read, 0 loaded, 2 already there"),
            "{out}"
        );
        assert_eq!(target.cli(&["GET", "str:short"]).trim(), "mine");

        let (code, out, _) = replay(
            &rdb,
            &url(&target),
            &["--mode", mode, "--on-exists", "replace"],
        );
        assert_eq!(code, 0, "{mode}: {out}");
        assert_eq!(
            target.digest(),
            want,
            "{mode}: replace gives the file's data"
        );
    }
}

#[test]
fn a_key_over_proto_max_bulk_len_arrives_intact() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    // Incompressible, so what RESTORE would carry is as large as the data: 4.5 MB of list
    // and of hash, against a target that takes at most 1 MB in one bulk string.
    let big = noise(4_500_000, 0x9e37_79b9_7f4a_7c15);
    let mut cmds = Vec::new();
    let mut list = resp::Command::new("RPUSH");
    let mut hash = resp::Command::new("HSET");
    list.arg(b"big:list");
    hash.arg(b"big:hash");
    for (i, element) in big.chunks(1500).enumerate() {
        list.arg(element);
        hash.arg(i.to_string().as_bytes()).arg(element);
    }
    list.write_to(&mut cmds).unwrap();
    hash.write_to(&mut cmds).unwrap();
    // Strings go as SET, but one over half a bulk string's limit as RESTORE (its own bytes).
    let mut set = resp::Command::new("SET");
    set.arg(b"big:string").arg(&big[..700_000]);
    set.write_to(&mut cmds).unwrap();
    let mut set = resp::Command::new("SET");
    set.arg(b"small:string").arg(b"v");
    set.write_to(&mut cmds).unwrap();
    let (errors, _, text) = source.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    let want = source.digest();
    for on_exists in ["fail", "replace"] {
        let target = Server::start_with(&b, None, &["--proto-max-bulk-len", "1mb"]);
        let (code, out, err) = replay(&rdb, &url(&target), &["--on-exists", on_exists]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("1 RESTORE, 3 native"),
            "too large for RESTORE: {out}"
        );
        assert_eq!(target.digest(), want);
    }
}

/// A string longer than the target's proto-max-bulk-len cannot exist there (APPEND stops at the
/// limit): the key is reported failed, and neither it nor its temporary key is left behind.
#[test]
fn a_string_over_the_targets_limit_fails_and_leaves_nothing() {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    let mut cmds = Vec::new();
    // Incompressible, so that its RESTORE payload is over the limit too.
    let big = noise(2 << 20, 0x2545_f491_4f6c_dd1d);
    resp::Command::new("SET")
        .arg(b"big:string")
        .arg(&big)
        .write_to(&mut cmds)
        .unwrap();
    resp::Command::new("SET")
        .arg(b"small:string")
        .arg(b"v")
        .write_to(&mut cmds)
        .unwrap();
    let (errors, _, text) = source.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    for mode in ["auto", "commands"] {
        let target = Server::start_with(&b, None, &["--proto-max-bulk-len", "1mb"]);
        let (code, out, err) = replay(&rdb, &url(&target), &["--mode", mode]);
        assert_eq!(code, 1, "{mode}: {out}{err}");
        assert!(out.contains("1 acknowledged, 1 failed"), "{mode}: {out}");
        assert_eq!(target.cli(&["EXISTS", "big:string"]).trim(), "0", "{mode}");
        assert_eq!(
            target.cli(&["DBSIZE"]).trim(),
            "1",
            "{mode}: a temporary key is left"
        );
    }
}

/// Keys the target answers BUSY for (a long script runs) are sent again once it is free; with
/// the default `--on-exists fail` they still must not overwrite the keys the target holds.
#[test]
fn keys_sent_again_after_busy_replies_still_overwrite_nothing() {
    let b = build("redis-7.0");
    let (_source, rdb) = populated_dump(50_000);
    // The same names with other values (strings longer, collections as strings).
    let target = Server::start(&b, None);
    target.cli(&["DEBUG", "POPULATE", "30000", "str", "25"]);
    let mut cmds = Vec::new();
    for i in 0..20_000 {
        resp::Command::new("SET")
            .arg(format!("k:{i}").as_bytes())
            .arg(b"theirs")
            .write_to(&mut cmds)
            .unwrap();
    }
    let (errors, _, text) = target.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    let before = target.digest();
    target.cli(&["CONFIG", "SET", "busy-reply-threshold", "20"]);
    // Busy for 1.5 s: other clients get -BUSY meanwhile.
    let script = "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
                  while true do local t = redis.call('TIME') \
                  if t[1] * 1000000 + t[2] - t0 > 1500000 then break end end return 1";
    for mode in ["restore", "commands"] {
        // Slowed down, so that the script starts in the middle of the replay.
        let run = common::spawn_replay(
            &rdb,
            &url(&target),
            &["--mode", mode, "--max-ops-per-sec", "20000", "-q"],
        );
        std::thread::sleep(Duration::from_millis(500));
        let busy = Command::new(redis_cli())
            .args(["-p", &target.port.to_string(), "EVAL", script, "0"])
            .output()
            .unwrap();
        assert!(busy.status.success(), "{busy:?}");
        let done = run.wait_with_output().unwrap();
        let (code, out, err) = (
            done.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr),
        );
        assert_eq!(code, 1, "{mode}: {out}{err}");
        assert!(
            summary_number(&out, &[" retries", " retry,"]) > 0,
            "{mode}: nothing was busy: {out}"
        );
        // The BUSY replies are error replies, named as retried, not as refused keys.
        assert!(
            summary_number(&out, &[" retried (redirected"]) > 0,
            "{mode}: {out}"
        );
        assert!(
            out.contains(" 0 acknowledged, 50,000 failed"),
            "{mode}: {out}"
        );
        assert_eq!(
            target.digest(),
            before,
            "{mode}: a key was overwritten\n{out}"
        );
    }
}

/// Keys whose TTL has passed by `--now` are not sent; the others all are.
#[test]
fn expired_keys_are_not_sent() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::testdata("redis-7.0.json")).unwrap())
            .unwrap();
    let expires = fixture["expires"].as_u64().unwrap();
    let keys: u64 = fixture["dbsize"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(expires > 0 && expires < keys);
    let target = Server::start(&b, None);
    // Year 2500: after every TTL in the fixture.
    let (code, out, err) = replay(&rdb, &url(&target), &["--now", "16725225600000"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!(", {expires} expired,")), "{out}");
    let keyspace = target.cli(&["INFO", "keyspace"]);
    let loaded: u64 = keyspace
        .lines()
        .filter_map(|l| {
            l.split("keys=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(loaded, keys - expires, "{keyspace}");
}

/// A dump of `n` keys of every type (some with TTLs), saved by a real Redis 7.0.
fn populated_dump(n: u64) -> (Server, PathBuf) {
    let b = build("redis-7.0");
    let source = Server::start(&b, None);
    source.cli(&["DEBUG", "POPULATE", &(n * 6 / 10).to_string(), "str", "20"]);
    let mut cmds = Vec::new();
    for i in 0..n * 4 / 10 {
        let key = format!("k:{i}");
        let mut c = match i % 5 {
            0 => resp::Command::new("RPUSH"),
            1 => resp::Command::new("SADD"),
            2 => resp::Command::new("ZADD"),
            3 => resp::Command::new("HSET"),
            _ => resp::Command::new("XADD"),
        };
        c.arg(key.as_bytes());
        match i % 5 {
            2 => {
                c.arg(b"1.5").arg(b"a").arg(b"2").arg(b"b");
            }
            3 => {
                c.arg(b"f1").arg(b"v1").arg(b"f2").arg(key.as_bytes());
            }
            4 => {
                c.arg(b"*").arg(b"field").arg(key.as_bytes());
            }
            _ => {
                c.arg(b"a").arg(key.as_bytes()).arg(b"c");
            }
        }
        c.write_to(&mut cmds).unwrap();
        if i % 7 == 0 {
            resp::Command::new("PEXPIRE")
                .arg(key.as_bytes())
                .arg(b"86400000")
                .write_to(&mut cmds)
                .unwrap();
        }
    }
    let (errors, _, text) = source.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    assert_eq!(source.cli(&["DBSIZE"]).trim(), n.to_string());
    source.cli(&["SAVE"]);
    let rdb = source.dir.path().join("dump.rdb");
    (source, rdb)
}

#[test]
fn a_killed_target_resumes_from_the_checkpoint() {
    let b = build("redis-7.0");
    let (source, rdb) = populated_dump(100_000);
    let want = source.digest();
    let durable = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut target = Server::start_with(&b, None, &durable);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("checkpoint.json");
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &[
            "--checkpoint",
            cp.to_str().unwrap(),
            "--retry-timeout",
            "1",
            "--max-ops-per-sec",
            "20000",
            "--mode",
            "commands",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    target.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--resume"), "{err}");
    // The keys in flight were to go again with replace semantics: said, as it could overwrite.
    assert!(
        err.contains("were in flight when a connection was lost"),
        "{err}"
    );
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let done = checkpoint["done"].as_u64().unwrap();
    assert!(done > 0 && done < 100_000, "{checkpoint}");
    assert_eq!(checkpoint["complete"], false);

    let target = target.kill_and_restart(&b, &durable);
    let keys_after_restart: u64 = target.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(
        keys_after_restart >= done,
        "acknowledged keys survived: {keys_after_restart} < {done}"
    );
    // A value the cut run built aside and had not renamed (the target made it durable just
    // before it died): the resume deletes it. One is made here so that there is one for sure.
    let run_id = checkpoint["run_id"].as_u64().unwrap();
    assert_ne!(run_id, 0, "{checkpoint}");
    let leftover = format!("{{k:1}}rdbtool-tmp:{run_id:x}:99999999");
    target.cli(&["RPUSH", &leftover, "a"]);
    let (code, out, err) = replay(
        &rdb,
        &url(&target),
        &[
            "--checkpoint",
            cp.to_str().unwrap(),
            "--resume",
            "--mode",
            "commands",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let skipped: u64 = out
        .split(" before the checkpoint")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(skipped, done, "{out}");
    assert!(err.contains("temporary key"), "{err}");
    let tmp = target.cli(&["--scan", "--pattern", "*rdbtool-tmp*"]);
    assert_eq!(tmp.trim(), "", "temporary keys left");
    assert_eq!(target.digest(), want);
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    assert_eq!(checkpoint["complete"], true);
}

struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Three masters, no replicas.
    fn start(b: &Build) -> Cluster {
        Cluster::start_with_replicas(b, 0)
    }

    /// Three masters with `replicas` replicas each, every replica in sync with its master.
    fn start_with_replicas(b: &Build, replicas: usize) -> Cluster {
        let nodes: Vec<Server> = (0..3 * (1 + replicas))
            .map(|_| {
                Server::start_with(
                    b,
                    None,
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        let known = format!("cluster_known_nodes:{}", cluster.nodes.len());
        let start = Instant::now();
        while !cluster.nodes.iter().all(|n| {
            let info = n.cli(&["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains(&known)
        }) || !cluster.replicas_in_sync(replicas)
        {
            assert!(start.elapsed() < Duration::from_secs(30), "cluster not ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Every master has `replicas` replicas online, each with its link to the master up.
    fn replicas_in_sync(&self, replicas: usize) -> bool {
        let roles: Vec<String> = self.nodes.iter().map(|n| n.cli(&["ROLE"])).collect();
        let masters = roles.iter().filter(|r| r.starts_with("master")).count();
        let linked = self
            .nodes
            .iter()
            .filter(|n| {
                n.cli(&["INFO", "replication"])
                    .contains("master_link_status:up")
            })
            .count();
        masters == 3 && linked == 3 * replicas
    }

    fn is_master(n: &Server) -> bool {
        n.cli(&["INFO", "replication"]).contains("role:master")
    }

    /// The port of the master `n` replicates, if it is a replica.
    fn master_port(n: &Server) -> Option<u16> {
        n.cli(&["INFO", "replication"])
            .lines()
            .find_map(|l| l.strip_prefix("master_port:"))
            .and_then(|p| p.trim().parse().ok())
    }

    fn conn(port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every key of every master, checked to be in a slot that master owns.
    fn keys_by_node(&self) -> Vec<(u16, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        for n in self.nodes.iter().filter(|n| Cluster::is_master(n)) {
            let mut c = Cluster::conn(n.port);
            let myid: String = redis::cmd("CLUSTER").arg("MYID").query(&mut c).unwrap();
            let ranges: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).unwrap();
            let mut owned = vec![false; 16384];
            if let redis::Value::Array(rs) = ranges {
                for r in rs {
                    let redis::Value::Array(p) = r else { continue };
                    let (redis::Value::Int(s), redis::Value::Int(e), redis::Value::Array(m)) =
                        (&p[0], &p[1], &p[2])
                    else {
                        continue;
                    };
                    if m.get(2) == Some(&redis::Value::BulkString(myid.clone().into_bytes())) {
                        for slot in *s..=*e {
                            owned[slot as usize] = true;
                        }
                    }
                }
            }
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
            for k in &keys {
                assert!(
                    owned[key_slot(k) as usize],
                    "key {:?} on a node that does not own its slot",
                    String::from_utf8_lossy(k)
                );
            }
            out.push((n.port, keys));
        }
        out
    }
}

/// DEBUG DIGEST-VALUE of `keys` on one connection, 1000 at a time.
fn digests(c: &mut redis::Connection, keys: &[Vec<u8>]) -> Vec<redis::Value> {
    let mut out = Vec::new();
    for chunk in keys.chunks(1000) {
        let d: Vec<redis::Value> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(chunk)
            .query(c)
            .unwrap();
        out.extend(d);
    }
    out
}

fn check_cluster_matches(cluster: &Cluster, source: &Server, total: u64) {
    let mut src = Cluster::conn(source.port);
    let mut seen = 0u64;
    for (port, keys) in cluster.keys_by_node() {
        seen += keys.len() as u64;
        let mut c = Cluster::conn(port);
        let got = digests(&mut c, &keys);
        let want = digests(&mut src, &keys);
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 0,
            "node {port}: {differ} keys differ from the source"
        );
    }
    assert_eq!(seen, total, "every key, once");
}

#[test]
fn cluster_replay_routes_every_key() {
    let b = build("redis-7.0");
    let (source, rdb) = populated_dump(100_000);
    let cluster = Cluster::start(&b);
    // --dry-run: what each master would get, and nothing written; a slot no master serves
    // (slot 0, of the first node's) is said.
    let first = &cluster.nodes[0];
    first.cli(&["CLUSTER", "DELSLOTS", "0"]);
    let (code, out, err) = replay(&rdb, &url(first), &["--dry-run"]);
    first.cli(&["CLUSTER", "ADDSLOTS", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("would send to 127.0.0.1:").count(), 3, "{out}");
    assert_eq!(out.matches("memory on 127.0.0.1:").count(), 3, "{out}");
    assert!(err.contains("no master for 1 of 16384 slots"), "{err}");
    for n in &cluster.nodes {
        assert_eq!(n.cli(&["DBSIZE"]).trim(), "0", "{out}");
    }
    let start = Instant::now();
    while !first.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "slot 0 not served again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = replay(&rdb, &url(&cluster.nodes[0]), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cluster of 3 masters"), "{out}");
    check_cluster_matches(&cluster, &source, 100_000);
}

#[test]
fn cluster_replay_survives_a_slot_migration() {
    let b = build("redis-7.0");
    let (source, rdb) = populated_dump(100_000);
    let cluster = Cluster::start(&b);
    let id = |n: &Server| n.cli(&["CLUSTER", "MYID"]).trim().to_string();
    let (from, to) = (id(&cluster.nodes[0]), id(&cluster.nodes[1]));
    let mut reshard = Command::new(redis_cli())
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", cluster.nodes[0].port),
        ])
        .args([
            "--cluster-from",
            &from,
            "--cluster-to",
            &to,
            "--cluster-slots",
            "1500",
        ])
        .args(["--cluster-yes", "--cluster-pipeline", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Slow enough that the migration runs during the whole replay.
    let (code, out, err) = replay(
        &rdb,
        &url(&cluster.nodes[2]),
        &[
            "--max-ops-per-sec",
            "25000",
            "--mode",
            "commands",
            "--pipeline",
            "100",
        ],
    );
    let resharded = reshard.wait().unwrap();
    assert!(resharded.success(), "reshard failed");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(", 0 failed"), "{out}");
    let retries: u64 = out
        .split("commands, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.replace(',', "").parse().ok())
        .unwrap_or(0);
    assert!(retries > 0, "the migration redirected nothing: {out}");
    check_cluster_matches(&cluster, &source, 100_000);
}

/// A number in the replay summary: the one before the first of `labels` that is there (e.g.
/// " retries", " retry,").
fn summary_number(out: &str, labels: &[&str]) -> u64 {
    labels
        .iter()
        .find_map(|label| out.split_once(label))
        .and_then(|(s, _)| s.rsplit(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no {labels:?} in: {out}"))
}

/// A master of a cluster with replicas fails over to its replica (CLUSTER FAILOVER: coordinated,
/// no acknowledged write lost) in the middle of the replay: both modes, as every key is one
/// RESTORE or several native commands the failover may split.
#[test]
fn cluster_replay_survives_a_failover() {
    let b = build("redis-7.0");
    let (source, rdb) = populated_dump(100_000);
    for mode in ["restore", "commands"] {
        failover_during_replay(&b, &source, &rdb, mode);
    }
}

/// A background replay, killed if an assertion fails while it runs.
struct Background(Option<std::process::Child>);

impl Background {
    fn running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn failover_during_replay(b: &Build, source: &Server, rdb: &Path, mode: &str) {
    let cluster = Cluster::start_with_replicas(b, 1);
    let replica = cluster
        .nodes
        .iter()
        .find(|n| !Cluster::is_master(n))
        .expect("a replica");
    let old_port = Cluster::master_port(replica).expect("its master");
    let old = cluster
        .nodes
        .iter()
        .find(|n| n.port == old_port)
        .expect("the replica's master is a node of the cluster");
    let masters_dbsize = || -> u64 {
        cluster
            .nodes
            .iter()
            .filter(|n| Cluster::is_master(n))
            .map(|n| n.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap_or(0))
            .sum()
    };

    let started = Instant::now();
    // Slow enough (5 to 8 s) that the failover lands in the middle of the replay. Sent to the
    // master about to be demoted, which is then also the node asked for the slot map.
    let mut child = Background(Some(
        Command::new(rdbtool_bin())
            .args([
                "replay",
                rdb.to_str().unwrap(),
                "--to",
                &url(old),
                "--quiet",
            ])
            .args(["--mode", mode, "--max-ops-per-sec", "8000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // Some keys acknowledged first.
    while masters_dbsize() < 20_000 {
        assert!(
            child.running(),
            "{mode}: the replay ended before the failover"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode}: replay stuck"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = masters_dbsize();
    assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
    let failover = Instant::now();
    let mut asked = Instant::now();
    while !(Cluster::is_master(replica) && Cluster::master_port(old) == Some(replica.port)) {
        assert!(
            failover.elapsed() < Duration::from_secs(30),
            "{mode}: roles did not swap"
        );
        // A manual failover is given up silently when the replica has not caught up with the
        // paused master within 5 s (a busy host); ask again, as an operator would. The rate
        // limit above leaves the replay running for 10 s after the first request.
        if asked.elapsed() > Duration::from_secs(6) && !Cluster::is_master(replica) {
            assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
            asked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let swapped_after = failover.elapsed();
    let during_replay = child.running();
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    let (code, out, err) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!(
        "{mode}: failover at {before} keys, roles swapped in {swapped_after:?}, replay done in \
         {:?}\n{out}",
        started.elapsed()
    );
    assert_eq!(code, 0, "{mode}: {out}{err}");
    assert!(out.contains(", 0 failed"), "{mode}: {out}");
    assert!(
        during_replay,
        "{mode}: the failover ended after the replay: {out}"
    );
    assert!(
        summary_number(&out, &[" retries", " retry,"]) > 0
            && summary_number(&out, &[" topology refreshes", " topology refresh"]) > 0,
        "{mode}: the failover redirected nothing: {out}"
    );
    assert_eq!(masters_dbsize(), 100_000, "{mode}: every key, once");
    check_cluster_matches(&cluster, source, 100_000);
}

/// An AOF written by a real Redis 6.2 (one file): plain, and with an RDB preamble followed by
/// the commands written after the rewrite.
#[test]
fn aof_files_replay_in_order() {
    let b = build("redis-6.2");
    for preamble in ["no", "yes"] {
        let conf = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let source = Server::start_with(&b, None, &conf);
        let rdb = common::testdata("redis-6.2.rdb");
        let (code, out, err) = replay(&rdb, &url(&source), &[]);
        assert_eq!(code, 0, "{out}{err}");
        if preamble == "yes" {
            source.cli(&["BGREWRITEAOF"]);
            let start = Instant::now();
            while !source
                .cli(&["INFO", "persistence"])
                .contains("aof_rewrite_in_progress:0")
            {
                assert!(start.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Commands after the rewrite: they follow the preamble in the file.
        source.cli(&["SELECT", "0"]);
        source.cli(&["INCR", "counter"]);
        source.cli(&["LPUSH", "list:small", "after"]);
        source.cli(&["DEL", "str:short"]);
        let want = source.digest();
        let aof = source.dir.path().join("appendonly.aof");
        let head = std::fs::read(&aof).unwrap();
        assert_eq!(head.starts_with(b"REDIS"), preamble == "yes");

        let target = Server::start(&b, None);
        let (code, out, err) = replay(&aof, &url(&target), &[]);
        assert_eq!(code, 0, "preamble {preamble}: {out}{err}");
        assert_eq!(target.digest(), want, "preamble {preamble}: {out}");
        // Options that select or change keys do not reach the commands: said, not ignored.
        let target = Server::start(&b, None);
        let (_, _, err) = replay(&aof, &url(&target), &["--type", "string", "--no-ttl"]);
        assert!(
            err.contains("replayed as they are: --type, --no-ttl not applied"),
            "preamble {preamble}: {err}"
        );
    }
}

/// Password from REDISCLI_AUTH, never printed; --db-map; --no-ttl and --ttl-shift.
#[test]
fn auth_db_map_and_ttl_options() {
    let b = build("redis-7.0");
    let rdb = common::testdata("redis-7.0.rdb");
    let target = Server::start(&b, None);
    target.cli(&["CONFIG", "SET", "requirepass", "s3cret"]);
    let to = format!("redis://127.0.0.1:{}", target.port);
    let out = Command::new(rdbtool_bin())
        .args(["replay", rdb.to_str().unwrap(), "--to", &to])
        .args(["--db-map", "0=3,5=6", "--no-ttl", "--type", "string"])
        .env("REDISCLI_AUTH", "s3cret")
        .output()
        .unwrap();
    let text = common::printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("s3cret"), "password printed: {text}");
    let authed = |args: &[&str]| {
        let mut all = vec!["-a", "s3cret", "--no-auth-warning"];
        all.extend_from_slice(args);
        target.cli(&all)
    };
    assert_eq!(
        authed(&["-n", "0", "DBSIZE"]).trim(),
        "0",
        "db 0 moved to 3"
    );
    let in3: u64 = authed(&["-n", "3", "DBSIZE"]).trim().parse().unwrap();
    assert!(in3 > 10, "strings of db 0 in db 3: {in3}");
    assert_eq!(authed(&["-n", "6", "EXISTS", "db5:str"]).trim(), "1");
    assert_eq!(
        authed(&["-n", "3", "TTL", "str:ttl:1"]).trim(),
        "-1",
        "--no-ttl"
    );

    // With the password in the URL instead: the summary shows it redacted.
    let to = format!("redis://:s3cret@127.0.0.1:{}/2", target.port);
    let (code, out, err) = replay(
        &rdb,
        &to,
        &[
            "--db",
            "0",
            "--key",
            "str:ttl:*",
            "--ttl-shift",
            "-10",
            "--on-exists",
            "skip",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(":***@127.0.0.1") && !out.contains("s3cret"),
        "{out}"
    );
    let source = Server::start(&b, Some(&rdb));
    let src_ms: i64 = source
        .cli(&["PEXPIRETIME", "str:ttl:1"])
        .trim()
        .parse()
        .unwrap();
    let got_ms: i64 = authed(&["-n", "2", "PEXPIRETIME", "str:ttl:1"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(got_ms, src_ms - 10_000, "--ttl-shift -10");
}

/// rediss://: certificates are checked by default (against --cacert), and not with --insecure.
#[test]
fn tls_checks_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let b = build("redis-7.0");
    let (server, tls_port) = common::server::start_tls(&b, dir.path());
    let rdb = common::testdata("redis-7.0.rdb");
    let to = format!("rediss://127.0.0.1:{tls_port}");
    let (code, out, err) = replay(&rdb, &to, &[]);
    assert_eq!(code, 2, "an unknown authority is refused: {out}{err}");
    let (code, out, err) = replay(&rdb, &to, &["--cacert", &p("ca.crt")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rediss://127.0.0.1"), "{out}");
    let want = Server::start(&b, Some(&rdb)).digest();
    assert_eq!(server.digest(), want);
    let (code, out, err) = replay(&rdb, &to, &["--insecure", "--on-exists", "skip"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Ctrl-C: the keys in flight get their answers, the checkpoint is written, the exit status
/// says the replay did not finish; --resume completes it.
#[test]
fn interrupt_writes_the_checkpoint_and_resume_completes() {
    let b = build("redis-7.0");
    let (source, rdb) = populated_dump(50_000);
    let want = source.digest();
    let target = Server::start(&b, None);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("checkpoint.json");
    let child = common::spawn_replay(
        &rdb,
        &url(&target),
        &[
            "--checkpoint",
            cp.to_str().unwrap(),
            "--max-ops-per-sec",
            "10000",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let done = checkpoint["done"].as_u64().unwrap();
    let on_target: u64 = target.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(done > 0 && done < 50_000, "{checkpoint}");
    // Everything in flight was answered before the checkpoint was written.
    assert_eq!(on_target, done, "{checkpoint}");
    let (code, out, err) = replay(
        &rdb,
        &url(&target),
        &["--checkpoint", cp.to_str().unwrap(), "--resume"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(target.digest(), want);
}
