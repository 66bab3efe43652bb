//! The library's replica link against real masters: the handshake, `PSYNC`, disk-based and
//! diskless snapshots, the command stream up to the master's offset, `REPLCONF ACK`, a partial
//! resync on a second link, passwords, TLS, and masters that die or stall mid-snapshot.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::backlog::{field, info, master_offset};
use common::server::{Build, Server, build};
use rdbtool::backlog::replica::{Error, Replica, Start};
use rdbtool::replay::endpoint::Tls;
use rdbtool::resp::parse::{Item, Slice};

/// Diskless transfers (`$EOF:`), without the default 5 s wait for more replicas.
const DISKLESS: [&str; 4] = [
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
];

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

/// `SET <prefix><i> <i>` for i in 0..n, through one pipe.
fn write_keys(master: &Server, prefix: &str, n: usize) {
    let mut cmds = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("{prefix}{i}"), i.to_string());
        cmds.extend(rdbtool::resp::encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
    }
    let (errors, replies, out) = master.pipe(&cmds);
    assert_eq!((errors, replies), (0, n as u64), "{out}");
}

/// The stream's bytes from offset `from` until the reader is at the master's
/// `master_repl_offset` (polled; a `ping` may move it on meanwhile).
fn read_to_master_offset(replica: &mut Replica, master: &Server, from: u64) -> Vec<u8> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if from + got.len() as u64 == master_offset(master) {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "at {} after 20 s, the master at {}",
            from + got.len() as u64,
            master_offset(master)
        );
        let n = replica.read(&mut buf).expect("stream");
        got.extend_from_slice(&buf[..n]);
    }
}

/// The commands of `stream` (whole commands only), their arguments as text.
fn commands(stream: &[u8]) -> Vec<Vec<String>> {
    let mut slice = Slice::new(stream, 1);
    let mut out = Vec::new();
    while let Some(item) = slice.next_item() {
        let Item::Command(cmd) = item.expect("RESP") else {
            panic!("an annotation in a replication stream")
        };
        out.push(
            cmd.args()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        );
    }
    out
}

/// A full capture from `master` (which holds 200 keys `k:*`): the snapshot verifies and loads
/// into a fresh server with the master's digest, the stream holds the 300 SETs written after
/// it, in order, up to the master's offset; a second link then continues from its end.
fn full_capture(b: &Build, master: &Server, url: &str, tls: &Tls) {
    let want = master.digest();
    let mut replica = Replica::connect(url, tls).expect("connect");
    let Start::Full { replid, offset } = replica.psync(None).expect("psync") else {
        panic!("{}: PSYNC ? -1 did not get +FULLRESYNC", b.name)
    };
    assert_eq!(
        replid,
        field(&info(master, "replication"), "master_replid"),
        "{}",
        b.name
    );
    let dir = tempfile::tempdir().unwrap();
    let rdb = dir.path().join("snapshot.rdb");
    let mut file = std::fs::File::create(&rdb).unwrap();
    let len = replica.snapshot(&mut file).expect("snapshot");
    file.flush().unwrap();
    assert_eq!(len, std::fs::metadata(&rdb).unwrap().len());
    let verify = common::rdbtool(&["verify", rdb.to_str().unwrap()]);
    assert!(verify.status.success(), "{}: {verify:?}", b.name);
    assert_eq!(Server::start(b, Some(&rdb)).digest(), want, "{}", b.name);

    replica.ack(offset).expect("ack");
    write_keys(master, "s:", 300);
    let stream = read_to_master_offset(&mut replica, master, offset);
    let commands = commands(&stream);
    let sets: Vec<&[String]> = commands
        .iter()
        .filter(|c| c[0] == "SET")
        .map(|c| &c[1..])
        .collect();
    let expected: Vec<[String; 2]> = (0..300)
        .map(|i| [format!("s:{i}"), i.to_string()])
        .collect();
    assert_eq!(sets, expected, "{}", b.name);
    let first = commands.iter().find(|c| c[0] != "ping").unwrap();
    assert_eq!(
        first,
        &["SELECT", "0"],
        "{}: after a full resync, SELECT comes first",
        b.name
    );

    let end = offset + stream.len() as u64;
    let mut again = Replica::connect(url, tls).expect("connect again");
    let answer = again.psync(Some((&replid, end + 1))).expect("psync again");
    assert_eq!(
        answer,
        Start::Continue {
            replid: Some(replid)
        },
        "{}",
        b.name
    );
}

fn master_with_keys(b: &Build, extra: &[&str]) -> Server {
    let master = Server::start_with(b, None, extra);
    write_keys(&master, "k:", 200);
    master
}

#[test]
fn disk_based_snapshot_then_the_stream_then_continue() {
    let b = build("redis-7.0");
    let master = master_with_keys(&b, &["--repl-diskless-sync", "no"]);
    full_capture(&b, &master, &url(&master), &Tls::default());
    assert!(log(&master).contains("BGSAVE for SYNC with target: disk"));
}

#[test]
fn diskless_snapshot_then_the_stream_then_continue() {
    let b = build("redis-7.0");
    let master = master_with_keys(&b, &DISKLESS);
    full_capture(&b, &master, &url(&master), &Tls::default());
    assert!(log(&master).contains("BGSAVE for SYNC with target: replicas sockets"));
}

/// While the master waits out its diskless delay it sends `\n` keepalives, skipped.
#[test]
fn keepalives_while_the_master_waits_are_skipped() {
    let b = build("redis-7.0");
    let extra = [
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "3",
    ];
    let master = master_with_keys(&b, &extra);
    let started = Instant::now();
    let mut replica = Replica::connect(&url(&master), &Tls::default()).unwrap();
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));
    let mut rdb = Vec::new();
    replica.snapshot(&mut rdb).expect("snapshot");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        rdb.starts_with(b"REDIS") && rdb.len() > 1000,
        "{}",
        rdb.len()
    );
}

fn log(server: &Server) -> String {
    std::fs::read_to_string(server.dir.path().join("server.log")).unwrap()
}

#[test]
fn other_builds_redis_6_2_valkey_8_1_and_9_1() {
    for name in ["redis-6.2", "valkey-8.1", "valkey-9.1"] {
        let b = build(name);
        let master = master_with_keys(&b, &DISKLESS);
        full_capture(&b, &master, &url(&master), &Tls::default());
    }
}

#[test]
fn password_in_the_url_and_a_wrong_one() {
    let b = build("redis-7.0");
    let master = master_with_keys(&b, &[]);
    master.cli(&["CONFIG", "SET", "requirepass", "sekret"]);
    let port = master.port;
    let mut replica = Replica::connect(
        &format!("redis://:sekret@127.0.0.1:{port}"),
        &Tls::default(),
    )
    .expect("the right password");
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));
    assert!(replica.snapshot(&mut std::io::sink()).unwrap() > 0);

    master.cli(&[
        "-a", "sekret", "ACL", "SETUSER", "capture", "on", ">pw", "+@all", "~*",
    ]);
    let user = format!("redis://capture:pw@127.0.0.1:{port}");
    let mut replica = Replica::connect(&user, &Tls::default()).expect("an ACL user");
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));

    let started = Instant::now();
    let wrong = format!("redis://:nope@127.0.0.1:{port}");
    let err = Replica::connect(&wrong, &Tls::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Refused { step: "AUTH", .. }), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("WRONGPASS"), "{text}");
    assert!(!text.contains("nope"), "the password is not shown: {text}");
    let none = Replica::connect(&url(&master), &Tls::default())
        .err()
        .expect("refused");
    assert!(none.to_string().contains("NOAUTH"), "{none}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// rediss://: the certificate is checked against --cacert, or not with --insecure.
#[test]
fn tls_with_a_ca_or_insecure() {
    let b = build("redis-7.0");
    let dir = tempfile::tempdir().unwrap();
    let (master, tls_port) = common::server::start_tls(&b, dir.path());
    write_keys(&master, "k:", 200);
    let to = format!("rediss://127.0.0.1:{tls_port}");
    let err = Replica::connect(&to, &Tls::default())
        .err()
        .expect("unknown CA");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
    let tls = Tls {
        cacert: Some(std::fs::read(dir.path().join("ca.crt")).unwrap()),
        insecure: false,
    };
    full_capture(&b, &master, &to, &tls);
    let insecure = Tls {
        cacert: None,
        insecure: true,
    };
    let mut replica = Replica::connect(&to, &insecure).expect("insecure");
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));
}

/// A writer that runs `at_first` on its first write, then takes everything.
struct Trigger<F: FnMut()>(Option<F>);

impl<F: FnMut()> Write for Trigger<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(mut f) = self.0.take() {
            f();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A master whose snapshot (48 MB, not compressed) is far larger than the sockets' buffers.
fn big_master(b: &Build) -> Server {
    let extra = ["--repl-diskless-sync", "no", "--rdbcompression", "no"];
    let master = Server::start_with(b, None, &extra);
    let script = "for i = 1, 3000 do \
                  redis.call('SET', 'big:' .. i, redis.sha1hex(tostring(i)):rep(400)) end";
    master.cli(&["EVAL", script, "0"]);
    assert_eq!(master.cli(&["DBSIZE"]).trim(), "3000");
    master
}

#[test]
fn a_master_killed_mid_snapshot_is_an_error() {
    let b = build("redis-7.0");
    let mut master = big_master(&b);
    let mut replica = Replica::connect(&url(&master), &Tls::default()).unwrap();
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));
    let started = Instant::now();
    let got = replica.snapshot(&mut Trigger(Some(|| master.kill())));
    let err = got.expect_err("an error");
    assert!(err.to_string().contains("closed the link"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_master_stalled_mid_snapshot_times_out() {
    let b = build("redis-7.0");
    let master = big_master(&b);
    let pid = master.cli(&["INFO", "server"]);
    let pid = pid
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_string();
    let mut replica = Replica::connect(&url(&master), &Tls::default()).unwrap();
    replica.wait(Duration::from_secs(2));
    assert!(matches!(replica.psync(None), Ok(Start::Full { .. })));
    let stop = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let started = Instant::now();
    let got = replica.snapshot(&mut Trigger(Some(|| stop("-STOP"))));
    stop("-CONT");
    let err = got.expect_err("an error");
    assert!(err.to_string().contains("no answer within 2 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A replica without its master answers `-NOMASTERLINK`; a server loading its data, `-LOADING`:
/// both named, to try later.
#[test]
fn a_master_not_ready_says_try_later() {
    let b = build("redis-7.0");
    let replica_of_nothing = Server::start(&b, None);
    replica_of_nothing.cli(&["REPLICAOF", "127.0.0.1", "1"]);
    let mut replica = Replica::connect(&url(&replica_of_nothing), &Tls::default()).unwrap();
    let err = replica.psync(None).expect_err("NOMASTERLINK");
    assert!(matches!(err, Error::NoMasterLink { .. }), "{err}");
    assert!(err.try_later(), "{err}");

    let loading = Server::start(&b, None);
    loading.cli(&["DEBUG", "POPULATE", "2000"]);
    loading.cli(&["CONFIG", "SET", "key-load-delay", "1000"]);
    loading.cli(&[
        "CONFIG",
        "SET",
        "loading-process-events-interval-bytes",
        "1024",
    ]);
    let port = loading.port.to_string();
    let reload = std::process::Command::new(common::server::redis_cli())
        .args(["-p", &port, "DEBUG", "RELOAD"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !loading.cli(&["PING"]).contains("LOADING") {
        assert!(started.elapsed() < Duration::from_secs(5), "never loading");
    }
    let err = Replica::connect(&url(&loading), &Tls::default())
        .err()
        .expect("LOADING");
    assert!(matches!(err, Error::Loading { .. }), "{err}");
    assert!(err.to_string().contains("try later"), "{err}");
    reload.wait_with_output().unwrap();
}
