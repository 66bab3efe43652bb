//! `rdbtool backlog psync-check` against real servers: a replica cut off from its master (the
//! replica process stopped, its link killed) while a measured number of bytes is written, then
//! let go; the master's own count of partial and full resyncs (INFO stats) and its log must
//! show what psync-check predicted from the master's INFO saved at reconnection time. Also a
//! failover (a sibling continues by the promoted replica's secondary id), a replid the
//! master does not know, and a replica without its master (`-NOMASTERLINK` to any PSYNC).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::backlog::{field, info, num, wait_for};
use common::server::{Build, Server, build};
use serde_json::Value;

/// The smallest backlog; no periodic `ping` in the stream (it would move the offsets under
/// the measurements) and so no timeout; disk-based transfers, which start at once.
const CONF: [&str; 8] = [
    "--repl-backlog-size",
    "16kb",
    "--repl-ping-replica-period",
    "3600",
    "--repl-timeout",
    "3600",
    "--repl-diskless-sync",
    "no",
];

fn start_master(build: &Build) -> Server {
    Server::start_with(build, None, &CONF)
}

fn start_replica(build: &Build, master: &Server) -> Server {
    let port = master.port.to_string();
    let mut conf = CONF.to_vec();
    conf.extend(["--replicaof", "127.0.0.1", &port]);
    Server::start_with(build, None, &conf)
}

/// Waits until every replica's link is up and it has processed all the master wrote.
fn in_sync(master: &Server, replicas: &[&Server]) {
    wait_for("replicas in sync", || {
        let at = num(&info(master, "replication"), "master_repl_offset");
        replicas.iter().all(|r| {
            let text = info(r, "replication");
            field(&text, "master_link_status") == "up" && num(&text, "master_repl_offset") == at
        })
    });
}

/// The master's count of (full, partial accepted, partial refused) syncs.
fn syncs(server: &Server) -> [i64; 3] {
    let text = info(server, "stats");
    ["sync_full", "sync_partial_ok", "sync_partial_err"].map(|f| num(&text, f))
}

/// Waits for the master to answer one PSYNC; what it answered, by its stats.
fn observe(master: &Server, before: [i64; 3]) -> &'static str {
    let mut now = before;
    wait_for("the replica's PSYNC", || {
        now = syncs(master);
        now[0] + now[1] > before[0] + before[1]
    });
    match [now[0] - before[0], now[1] - before[1]] {
        [0, 1] => "CONTINUE",
        [1, 0] => "FULLRESYNC",
        deltas => panic!("sync_full and sync_partial_ok moved by {deltas:?}"),
    }
}

/// SETs of 1000-byte values making at least `total` bytes of stream, and their exact length.
fn sets(total: usize, tag: &str) -> (Vec<u8>, i64) {
    let value = "v".repeat(1000);
    let mut resp = Vec::new();
    for i in 0.. {
        if resp.len() >= total {
            break;
        }
        let key = format!("{tag}:{i}");
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        resp.extend_from_slice(cmd.as_bytes());
    }
    let len = resp.len() as i64;
    (resp, len)
}

/// Writes at least `total` bytes of stream on `server`, checking its offset moved by exactly
/// the bytes sent (a SET is propagated as the client sent it).
fn write_measured(server: &Server, total: usize, tag: &str) -> i64 {
    let before = num(&info(server, "replication"), "master_repl_offset");
    let (resp, len) = sets(total, tag);
    let (errors, _, out) = server.pipe(&resp);
    assert_eq!(errors, 0, "{out}");
    let after = num(&info(server, "replication"), "master_repl_offset");
    assert_eq!(after - before, len, "the offset moved by the bytes written");
    len
}

/// psync-check run as the command line on the two saved INFO outputs: (exit status, answer).
fn psync_check(master_info: &str, replica_info: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (m, r) = (
        dir.path().join("master.txt"),
        dir.path().join("replica.txt"),
    );
    std::fs::write(&m, master_info).unwrap();
    std::fs::write(&r, replica_info).unwrap();
    let out = common::rdbtool(&[
        "backlog",
        "psync-check",
        "--master-info",
        m.to_str().unwrap(),
        "--replica-info",
        r.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let answer = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("psync-check printed no JSON ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), answer)
}

/// The prediction matches what the server did; a CONTINUE sent the bytes predicted, from the
/// offset predicted (by the master's log line).
fn agree(master: &Server, predicted: &(i32, Value), observed: &str) {
    let (status, answer) = predicted;
    assert_eq!(answer["answer"], observed, "predicted {answer:#}");
    assert_eq!(*status, if observed == "CONTINUE" { 0 } else { 1 });
    if observed == "CONTINUE" {
        let line = format!(
            "Sending {} bytes of backlog starting from offset {}.",
            answer["bytes"], answer["request"]["offset"]
        );
        let log = Path::new(master.dir.path()).join("server.log");
        let log = std::fs::read_to_string(log).unwrap();
        assert!(
            log.contains(&line),
            "no {line:?} in the master's log:\n{log}"
        );
    }
}

fn signal(server: &Server, name: &str) {
    let pid = server.pid().to_string();
    let status = Command::new("kill").args([name, &pid]).status().unwrap();
    assert!(status.success(), "kill {name} {pid}");
}

/// Cuts the replica off, writes `bytes` on the master, lets the replica reconnect: the
/// prediction, checked against what the master did.
fn cut_and_reconnect(master: &Server, replica: &Server, bytes: usize, tag: &str) -> Value {
    // The first write after a full sync carries a SELECT: made here, outside the measurement.
    assert_eq!(master.cli(&["SET", "warm", "up"]).trim(), "OK");
    in_sync(master, &[replica]);
    let replica_info = info(replica, "replication");
    signal(replica, "-STOP");
    let at = num(&replica_info, "master_repl_offset");
    let master_at = num(&info(master, "replication"), "master_repl_offset");
    assert_eq!(
        master_at, at,
        "a byte was in flight when the replica stopped"
    );
    master.cli(&["CLIENT", "KILL", "TYPE", "replica"]);
    wait_for("the replica's link dropped", || {
        num(&info(master, "replication"), "connected_slaves") == 0
    });
    let written = write_measured(master, bytes, tag);
    let before = syncs(master);
    // The master's state as the replica finds it when it comes back.
    let predicted = psync_check(&info(master, "replication"), &replica_info);
    signal(replica, "-CONT");
    let observed = observe(master, before);
    in_sync(master, &[replica]);
    agree(master, &predicted, observed);
    let answer = predicted.1;
    assert_eq!(answer["request"]["offset"], at + 1, "{answer:#}");
    if observed == "CONTINUE" {
        assert_eq!(answer["bytes"], written, "{answer:#}");
    }
    answer
}

/// Well below, just above and far above the backlog's 16 KiB.
fn matrix(name: &str) {
    let b = build(name);
    let master = start_master(&b);
    let replica = start_replica(&b, &master);
    let below = cut_and_reconnect(&master, &replica, 4_000, "below");
    assert_eq!(below["answer"], "CONTINUE", "{name}: {below:#}");
    assert_eq!(below["rule"], "main_id");
    // Redis 7.0+ and Valkey trim their backlog by whole blocks, so it may still hold these
    // bytes: whatever the answer, the server must have given it.
    let just_above = cut_and_reconnect(&master, &replica, 16_384 + 1_500, "above");
    eprintln!("{name}: just above the backlog size: {just_above}");
    let far = cut_and_reconnect(&master, &replica, 200_000, "far");
    assert_eq!(far["answer"], "FULLRESYNC", "{name}: {far:#}");
    assert_eq!(far["rule"], "before_backlog");
    assert_eq!(master.digest(), replica.digest());
}

#[test]
fn psync_check_agrees_with_redis_7_0() {
    matrix("redis-7.0");
}

#[test]
fn psync_check_agrees_with_valkey_9_1() {
    matrix("valkey-9.1");
}

#[test]
fn psync_check_agrees_with_redis_6_2() {
    matrix("redis-6.2");
}

/// M with replicas R1 and R2; R1 promoted and written to; R2 pointed at R1 continues by R1's
/// secondary id (the replid they both had from M).
fn failover(name: &str) {
    let b = build(name);
    let m = start_master(&b);
    let (r1, r2) = (start_replica(&b, &m), start_replica(&b, &m));
    in_sync(&m, &[&r1, &r2]);
    let r2_info = info(&r2, "replication");
    assert_eq!(r1.cli(&["REPLICAOF", "NO", "ONE"]).trim(), "OK");
    wait_for("R1 promoted", || {
        field(&info(&r1, "replication"), "role") == "master"
    });
    // A promoted server re-selects its db with its first write (measured apart).
    assert_eq!(r1.cli(&["SET", "promoted", "1"]).trim(), "OK");
    write_measured(&r1, 3_000, "after-failover");
    let r1_info = info(&r1, "replication");
    assert_eq!(
        field(&r1_info, "master_replid2"),
        field(&r2_info, "master_replid")
    );
    let predicted = psync_check(&r1_info, &r2_info);
    let answer = &predicted.1;
    assert_eq!(answer["answer"], "CONTINUE", "{name}: {answer:#}");
    assert_eq!(answer["rule"], "second_id");
    let missing = num(&r1_info, "master_repl_offset") - num(&r2_info, "master_repl_offset");
    assert_eq!(answer["bytes"], missing);
    let before = syncs(&r1);
    let port = r1.port.to_string();
    assert_eq!(r2.cli(&["REPLICAOF", "127.0.0.1", &port]).trim(), "OK");
    let observed = observe(&r1, before);
    in_sync(&r1, &[&r2]);
    agree(&r1, &predicted, observed);
    assert_eq!(r1.digest(), r2.digest());
}

#[test]
fn failover_continues_by_the_secondary_id_on_redis_7_0() {
    failover("redis-7.0");
}

#[test]
fn failover_continues_by_the_secondary_id_on_valkey_9_1() {
    failover("valkey-9.1");
}

/// A replica of M pointed at an unrelated server X asks for M's replid: X does not know it.
fn unknown_replid(name: &str) {
    let b = build(name);
    let m = start_master(&b);
    let r = start_replica(&b, &m);
    in_sync(&m, &[&r]);
    let x = start_master(&b);
    let predicted = psync_check(&info(&x, "replication"), &info(&r, "replication"));
    assert_eq!(predicted.1["answer"], "FULLRESYNC");
    assert_eq!(predicted.1["rule"], "unknown_replid");
    let before = syncs(&x);
    let port = x.port.to_string();
    assert_eq!(r.cli(&["REPLICAOF", "127.0.0.1", &port]).trim(), "OK");
    let observed = observe(&x, before);
    in_sync(&x, &[&r]);
    agree(&x, &predicted, observed);
    // Not a replica forcing a full resync (`?`): the server counts a refused partial resync.
    assert_eq!(syncs(&x)[2] - before[2], 1);
}

#[test]
fn an_unknown_replid_is_a_full_resync_on_redis_7_0() {
    unknown_replid("redis-7.0");
}

#[test]
fn an_unknown_replid_is_a_full_resync_on_valkey_9_1() {
    unknown_replid("valkey-9.1");
}

/// A replica whose master is gone refuses any PSYNC: psync-check, given its INFO, says so.
fn no_master_link(name: &str) {
    let b = build(name);
    let mut m = start_master(&b);
    let r = start_replica(&b, &m);
    in_sync(&m, &[&r]);
    m.kill();
    wait_for("the replica's link down", || {
        field(&info(&r, "replication"), "master_link_status") == "down"
    });
    let r_info = info(&r, "replication");
    let (status, answer) = psync_check(&r_info, &r_info);
    assert_eq!(
        (status, &answer["answer"]),
        (1, &Value::from("NOMASTERLINK"))
    );
    assert_eq!(answer["rule"], "no_master_link");
    let offset = answer["request"]["offset"].to_string();
    let replid = field(&r_info, "master_replid");
    let reply = psync_reply(&r, &replid, &offset);
    assert!(
        reply.starts_with("-NOMASTERLINK"),
        "{name}: PSYNC answered {reply:?}"
    );
}

/// The first line a server answers to a raw `PSYNC` (redis-cli would turn into a replica).
fn psync_reply(server: &Server, replid: &str, offset: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "PSYNC {replid} {offset}\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    line
}

#[test]
fn a_replica_without_its_master_refuses_on_redis_7_0() {
    no_master_link("redis-7.0");
}

#[test]
fn a_replica_without_its_master_refuses_on_valkey_9_1() {
    no_master_link("valkey-9.1");
}

const ID: &str = "8c9c5a0b1e5e0a7f1d4c3b2a190807060504030a";

fn master_text() -> String {
    format!(
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n\
         master_replid:{ID}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n\
         master_repl_offset:17384\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:1\r\n\
         repl_backlog_size:16384\r\nrepl_backlog_first_byte_offset:1001\r\n\
         repl_backlog_histlen:16384\r\n"
    )
}

#[test]
fn text_answer_options_override_the_file_and_stdin_is_read() {
    let out = Command::new(env!("CARGO_BIN_EXE_rdbtool"))
        .args(["backlog", "psync-check", "--master-info", "-"])
        .args(["--replica-replid", ID, "--replica-offset", "17384"])
        .args(["--repl-backlog-histlen", "16000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(master_text().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The backlog now ends at 1001 + 16000 = 17001: the replica asks 17385, past it.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("FULLRESYNC"), "{text}");
    assert!(text.contains("rule after_backlog"), "{text}");
    assert!(
        text.contains("PSYNC 8c9c5a0b1e5e0a7f1d4c3b2a190807060504030a 17385"),
        "{text}"
    );
    assert!(text.contains("offset 17385 > repl_backlog_first_byte_offset 1001 + repl_backlog_histlen 16000 = 17001"), "{text}");
}

#[test]
fn a_missing_field_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("master.txt");
    std::fs::write(&m, master_text().replace("second_repl_offset", "other")).unwrap();
    let m = m.to_str().unwrap();
    let args = [
        "backlog",
        "psync-check",
        "--master-info",
        m,
        "--replica-replid",
        ID,
    ];
    let out = common::rdbtool(&[&args[..], &["--psync-offset", "17385"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("master.txt: the master's second_repl_offset is missing (give --master-info FILE or --second-repl-offset)"), "{stderr}");
    // Given as an option, it is there: the replica asks the end of the backlog, CONTINUE 0.
    let out = common::rdbtool(
        &[
            &args[..],
            &["--psync-offset", "17385", "--second-repl-offset", "-1"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("CONTINUE: the master sends 0 bytes"));
    // No offset for the replica at all.
    let out = common::rdbtool(&[&args[..], &["--second-repl-offset", "-1"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the replica's offset"));
}
