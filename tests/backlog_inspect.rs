//! `rdbtool backlog inspect` and `backlog size` on captures made here by the library's writer,
//! with chosen arrival times and sizes: the figures in the text and JSON reports, and exit 1
//! on a damaged capture; and on a real Redis 7.0's stream under a known write load.

mod common;

use std::path::Path;

use common::backlog::{spawn_capture, stop, wait_caught_up, wait_for};
use common::server::{Server, build};
use common::{printed, rdbtool};
use rdbtool::backlog::store::writer::{EpochStart, Writer};
use rdbtool::backlog::store::{Capture, Start};
use serde_json::Value;

const S: u64 = 1_000_000;
/// 2023-11-14 22:13:20 UTC.
const T0: u64 = 1_700_000_000;

/// The records: arrival (seconds after T0, and µs) and commands.
fn records() -> Vec<(u64, Vec<Vec<String>>)> {
    let set = |k: &str, n: usize| vec!["SET".into(), k.into(), "v".repeat(n)];
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (0, vec![words(&["SELECT", "0"]), set("user:1", 1000)]),
        (S / 2, vec![words(&["PING"])]),
        (S, vec![set("order:1", 3000)]),
        (30 * S, vec![words(&["REPLCONF", "GETACK", "*"])]),
        (90 * S, vec![set("user:2", 500)]),
    ]
}

fn encoded(cmd: &[String]) -> String {
    let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8(rdbtool::resp::encode(&args)).unwrap()
}

/// The capture of [`records`]; its segment left open (as a killed capture leaves it) unless
/// `seal`.
fn make_open(dir: &Path, seal: bool) {
    let mut w = Writer::create(dir, "redis://127.0.0.1:6379", 1 << 20).unwrap();
    let start = EpochStart {
        start_kind: Start::Backlog,
        replid: "b".repeat(40),
        psync_offset: 1000,
        server: Some("7.0.15".into()),
        backlog_size: Some(1 << 20),
        replid2: None,
    };
    w.start_epoch(start).unwrap();
    for (t, cmds) in records() {
        let payload: String = cmds.iter().map(|c| encoded(c)).collect();
        let after = w.at_end().after(payload.as_bytes());
        w.append(payload.as_bytes(), after, T0 * S + t).unwrap();
    }
    match seal {
        true => w.seal().unwrap(),
        false => w.sync().unwrap(),
    }
}

fn make(dir: &Path) {
    make_open(dir, true);
}

fn lengths() -> Vec<u64> {
    records()
        .iter()
        .map(|(_, cmds)| cmds.iter().map(|c| encoded(c).len() as u64).sum())
        .collect()
}

fn json(args: &[&str]) -> (i32, Value) {
    let out = rdbtool(args);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", printed(&out)));
    (out.status.code().unwrap(), doc)
}

#[test]
fn inspect_reports_traffic_peaks_prefixes_and_the_largest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    make(&dir);
    let d = dir.to_str().unwrap();
    let (code, r) = json(&["backlog", "inspect", d, "--format", "json", "--top", "2"]);
    assert_eq!(code, 0, "{r}");
    let len = lengths();
    let total: u64 = len.iter().sum();
    assert_eq!(r["commands"], 6);
    assert_eq!(r["bytes"], total);
    assert_eq!(r["seconds"], 91);
    assert_eq!(r["writes"]["count"], 3);
    assert_eq!(r["overhead"]["ping"]["count"], 1);
    assert_eq!(r["overhead"]["replconf_getack"]["count"], 1);
    assert_eq!(r["overhead"]["select"]["count"], 1);
    assert_eq!(r["epochs"][0]["end"], 1000 + total);
    // 1 s: the 3000-byte SET; 10 s: with the first record and the PING; 60 s: and GETACK.
    let peaks = r["peaks"].as_array().unwrap();
    assert_eq!(peaks[0]["bytes"], len[2]);
    assert_eq!(peaks[0]["bytes_from"], T0 + 1);
    assert_eq!(peaks[1]["bytes"], len[0] + len[1] + len[2]);
    assert_eq!(peaks[1]["bytes_from"], T0);
    assert_eq!(peaks[1]["commands"], 2);
    assert_eq!(peaks[2]["bytes"], len[..4].iter().sum::<u64>());
    assert_eq!(peaks[2]["commands"], 2);
    let prefixes: Vec<(&str, u64)> = r["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["prefix"].as_str().unwrap(), p["writes"].as_u64().unwrap()))
        .collect();
    assert_eq!(prefixes, [("user:", 2), ("order:", 1)]);
    let largest = &r["largest"];
    assert_eq!(largest.as_array().unwrap().len(), 2);
    assert_eq!(largest[0]["command"], "SET");
    assert_eq!(largest[0]["key"], "order:1");
    assert_eq!(largest[0]["offset"], 1001 + len[0] + len[1]);
    assert_eq!(largest[1]["key"], "user:1");

    let out = rdbtool(&["backlog", "inspect", d]);
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in [
        "6 commands",
        "2023-11-14 22:13:20 UTC",
        "REPLCONF GETACK",
        "peak rates",
        "user:",
        "largest commands",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn size_shows_the_peak_the_suggestion_and_what_the_configured_size_covered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    make(&dir);
    let d = dir.to_str().unwrap();
    let len = lengths();
    let args = [
        "backlog",
        "size",
        d,
        "--disconnect",
        "10s",
        "--format",
        "json",
    ];
    let (code, s) = json(&args);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["window_seconds"], 10);
    assert_eq!(s["scaled"], false);
    assert_eq!(s["needed"], len[0] + len[1] + len[2]);
    assert_eq!(s["suggested"], 1 << 20);
    let c = &s["configured"];
    assert_eq!(
        (c["bytes"].as_u64(), c["from"].as_str()),
        (Some(1 << 20), Some("capture.json"))
    );
    assert_eq!(c["covered"]["micros"], Value::Null);

    // A size the stream reached: one byte more than the biggest record, so the PING before
    // it too, half a second earlier.
    let small = (len[2] + 1).to_string();
    let args = [
        "backlog",
        "size",
        d,
        "--disconnect",
        "1m",
        "--backlog-size",
        &small,
    ];
    let out = rdbtool(&[&args[..], &["--format", "json"]].concat());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["configured"]["covered"]["micros"], S / 2);
    assert_eq!(s["configured"]["covered"]["from_us"], T0 * S + S / 2);

    // Longer than the capture: its whole-span rate, scaled.
    let out = rdbtool(&["backlog", "size", d, "--disconnect", "1h"]);
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let total: u64 = len.iter().sum();
    let scaled = (total * 3600).div_ceil(91);
    for want in [
        "less than the 3600 s window".to_string(),
        format!("{} bytes", rdbtool::text::thousands(scaled)),
        "suggested repl-backlog-size".into(),
        "= 1mb (1,048,576 bytes)".into(),
        "Redis's default (1mb)".into(),
        "never grew by that much".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
    }
    let out = rdbtool(&["backlog", "size", d, "--disconnect", "1500ms"]);
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
}

#[test]
fn a_damaged_capture_is_reported_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    make(&dir);
    let capture = Capture::open(&dir).unwrap();
    let seg = &capture.epochs[0].segments[0].path;
    let mut data = std::fs::read(seg).unwrap();
    let n = data.len();
    data[n - 3] ^= 0x20;
    std::fs::write(seg, data).unwrap();
    let d = dir.to_str().unwrap();
    for args in [
        &["backlog", "inspect", d][..],
        &["backlog", "size", d, "--disconnect", "60s"],
    ] {
        let out = rdbtool(args);
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("epoch 1") && text.contains("checksum"),
            "{text}"
        );
    }
}

/// Counts of the report's rows named by `field`: (name, count).
fn rows(r: &Value, list: &str, field: &str, count: &str) -> Vec<(String, u64)> {
    r[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x[field].to_string().replace('"', ""),
                x[count].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_real_masters_load_captured_and_inspected() {
    let master = Server::start_with(
        &build("redis-7.0"),
        None,
        &["--repl-ping-replica-period", "1"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let d = dir.to_str().unwrap();
    let url = format!("redis://127.0.0.1:{}", master.port);
    let child = spawn_capture(&[&url, "--out", d]);
    wait_for("the snapshot", || dir.join("snapshot.1.rdb").exists());
    // 200 SETs of 100-byte values and 200 INCRs in db 0, one SET in db 2.
    let mut cmds = Vec::new();
    let value = [b'v'; 100];
    for i in 0..200 {
        let key = format!("user:{i}");
        cmds.extend(rdbtool::resp::encode(&[b"SET", key.as_bytes(), &value]));
        let counter = format!("order:{}", i % 7);
        cmds.extend(rdbtool::resp::encode(&[b"INCR", counter.as_bytes()]));
    }
    cmds.extend(rdbtool::resp::encode(&[b"SELECT", b"2"]));
    cmds.extend(rdbtool::resp::encode(&[b"SET", b"other", b"x"]));
    let (errors, _, text) = master.pipe(&cmds);
    assert_eq!(errors, 0, "{text}");
    // The master pings its replicas every second.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    wait_caught_up(&dir, &master);
    let out = stop(child);

    let (code, r) = json(&["backlog", "inspect", d, "--format", "json"]);
    assert_eq!(code, 0, "{r:#}\n{out}");
    assert_eq!(r["writes"]["count"], 401, "{r:#}");
    let dbs = rows(&r, "dbs", "db", "writes");
    assert_eq!(dbs, [("0".to_string(), 400), ("2".to_string(), 1)], "{r:#}");
    let names = rows(&r, "by_name", "name", "count");
    assert!(names.contains(&("SET".into(), 201)), "{names:?}");
    assert!(names.contains(&("INCR".into(), 200)), "{names:?}");
    assert!(
        r["overhead"]["ping"]["count"].as_u64().unwrap() >= 1,
        "{r:#}"
    );
    assert!(
        r["overhead"]["select"]["count"].as_u64().unwrap() >= 2,
        "{r:#}"
    );
    let prefixes = rows(&r, "prefixes", "prefix", "writes");
    // Ties by name.
    assert_eq!(
        prefixes[..2],
        [("order:".into(), 200), ("user:".into(), 200)]
    );
    let epoch = &r["epochs"][0];
    let span = epoch["end"].as_u64().unwrap() + 1 - epoch["start"].as_u64().unwrap();
    assert_eq!(r["bytes"].as_u64(), Some(span), "{r:#}");
    assert_eq!(r["largest"][0]["command"], "SET");

    let (code, s) = json(&[
        "backlog",
        "size",
        d,
        "--disconnect",
        "60s",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["configured"]["bytes"], 1 << 20, "{s:#}");
    assert_eq!(s["configured"]["from"], "capture.json");
    assert_eq!(s["bytes"].as_u64(), Some(span));
    assert_eq!(s["suggested"], 1 << 20, "{s:#}");
}

#[test]
fn a_torn_last_record_is_a_notice_and_the_rest_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    make_open(&dir, false);
    let capture = Capture::open(&dir).unwrap();
    let seg = &capture.epochs[0].segments[0].path;
    // Half a record header: what a kill in the middle of a write leaves.
    let mut f = std::fs::OpenOptions::new().append(true).open(seg).unwrap();
    std::io::Write::write_all(&mut f, b"RBR1\x10\x00").unwrap();
    let d = dir.to_str().unwrap();
    let out = rdbtool(&["backlog", "inspect", d]);
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("notice epoch 1") && text.contains("torn"),
        "{text}"
    );
    let (code, r) = json(&["backlog", "inspect", d, "--format", "json"]);
    assert_eq!(
        (code, &r["commands"], &r["epochs"][0]["torn"]),
        (0, &6.into(), &true.into())
    );
    let out = rdbtool(&["backlog", "size", d, "--disconnect", "10s"]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
}
