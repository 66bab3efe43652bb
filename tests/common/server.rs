//! Real servers for the tests: started from the builds `scripts/servers.sh` installs (Debian's
//! Redis 7.0 and PyPI wheels), on 127.0.0.1, a free port and a temporary directory, and killed
//! when dropped. A missing server is a failure, not a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One installed server build, from target/servers/servers.json.
#[derive(Debug, Clone)]
pub struct Build {
    pub name: String,
    pub version: String,
    pub valkey: bool,
    pub server: PathBuf,
}

impl Build {
    /// `7.0`, `valkey-9.1`: what `--target-version` takes.
    pub fn target(&self) -> String {
        let mm: Vec<&str> = self.version.split('.').take(2).collect();
        let v = mm.join(".");
        if self.valkey {
            format!("valkey-{v}")
        } else {
            v
        }
    }

    fn major(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

pub fn builds() -> Vec<Build> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/servers/servers.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run `bash scripts/servers.sh` first",
            path.display()
        )
    });
    let list: Vec<Value> = serde_json::from_str(&text).expect("servers.json");
    list.iter()
        .map(|s| Build {
            name: s["name"].as_str().unwrap().to_string(),
            version: s["version"].as_str().unwrap().to_string(),
            valkey: s["kind"] == "valkey",
            server: PathBuf::from(s["server"].as_str().unwrap()),
        })
        .collect()
}

pub fn build(name: &str) -> Build {
    builds()
        .into_iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("server {name} not installed"))
}

/// The client used against every version: Debian's redis-cli speaks to all of them.
pub fn redis_cli() -> PathBuf {
    let cli = PathBuf::from("/usr/bin/redis-cli");
    assert!(
        cli.exists(),
        "redis-cli missing: apt-get install redis-tools"
    );
    cli
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    major: u32,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `build`, loading `rdb` first when given. A port another test grabbed first makes
    /// the server exit; then it is started again on another port.
    pub fn start(build: &Build, rdb: Option<&Path>) -> Server {
        Server::start_with(build, rdb, &[])
    }

    /// [`Server::start`] with more configuration (`--appendonly yes`, `--cluster-enabled yes`).
    pub fn start_with(build: &Build, rdb: Option<&Path>, extra: &[&str]) -> Server {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            if let Some(rdb) = rdb {
                std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
            }
            if let Some(server) = Server::spawn(build, dir, free_port(), extra) {
                return server;
            }
        }
        panic!("{} did not start on any of 5 ports", build.server.display());
    }

    /// Kills the server (SIGKILL: no shutdown save) and starts it again in the same
    /// directory, on the same port, with the same configuration.
    pub fn kill_and_restart(mut self, build: &Build, extra: &[&str]) -> Server {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Server::spawn(build, dir, self.port, extra)
            .unwrap_or_else(|| panic!("{} did not restart", build.server.display()))
    }

    /// The server's process id (to stop and continue it: a replica cut off from its master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server now, keeping its directory.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(build: &Build, dir: tempfile::TempDir, port: u16, extra: &[&str]) -> Option<Server> {
        {
            let mut cmd = Command::new(&build.server);
            cmd.arg("--port").arg(port.to_string()).args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]);
            cmd.arg("--dir").arg(dir.path()).args([
                "--dbfilename",
                "dump.rdb",
                "--daemonize",
                "no",
            ]);
            if build.major() >= 7 {
                cmd.args(["--enable-debug-command", "yes"]);
            }
            cmd.args(extra);
            let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
            cmd.stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log));
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", build.server.display()));
            let mut server = Server {
                child,
                port,
                dir,
                major: build.major(),
            };
            server.wait_ready().then_some(server)
        }
    }

    /// Waits until this very process answers (not another test's server on the same port).
    /// False if it exited.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        let pid = format!("process_id:{}", self.child.id());
        while start.elapsed() < Duration::from_secs(30) {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.cli(&["PING"]).trim() == "PONG" && self.cli(&["INFO", "server"]).contains(&pid)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!("server on port {} did not start:\n{log}", self.port);
    }

    /// Runs one command with redis-cli and returns its raw output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli())
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn digest(&self) -> String {
        if self.major < 4 {
            // Redis 3.x's DEBUG DIGEST asserts (and crashes) when it meets a dict still being
            // rehashed; serverCron finishes the rehashing within a second.
            std::thread::sleep(Duration::from_secs(1));
        }
        let d = self.cli(&["DEBUG", "DIGEST"]).trim().to_string();
        if d.len() != 40 {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "DEBUG DIGEST on port {} gave {d:?}; server log:\n{log}",
                self.port
            );
        }
        d
    }

    /// Pipes `commands` (RESP) through `redis-cli --pipe`; returns (errors, replies) from its
    /// summary line, and the whole output.
    pub fn pipe(&self, commands: &[u8]) -> (u64, u64, String) {
        use std::io::Write;
        let mut child = Command::new(redis_cli())
            .args(["-p", &self.port.to_string(), "--pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = commands.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let num = |label: &str| -> u64 {
            let at = text
                .find(label)
                .unwrap_or_else(|| panic!("no '{label}' in: {text}"));
            text[at + label.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        };
        (num("errors: "), num("replies: "), text)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends `commands` (RESP) on one connection and reads one integer reply per command.
    pub fn integers(&self, commands: &[u8], count: usize) -> Vec<i64> {
        use std::io::{BufRead, BufReader, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        conn.write_all(commands).unwrap();
        let mut reader = BufReader::new(conn);
        let mut out = Vec::with_capacity(count);
        let mut line = String::new();
        while out.len() < count {
            line.clear();
            reader.read_line(&mut line).unwrap();
            match line.as_bytes().first() {
                Some(b':') => out.push(line[1..].trim().parse().unwrap()),
                Some(b'+') => {}
                _ => panic!("unexpected reply {line:?}"),
            }
        }
        out
    }
}

/// Starts `build` with TLS on a second free port (plain TCP on [`Server::port`] as usual),
/// its certificate for 127.0.0.1 and localhost signed by a test CA: `dir` gets ca.crt (what
/// `--cacert` takes), server.crt and server.key. Returns the server and its TLS port.
pub fn start_tls(build: &Build, dir: &Path) -> (Server, u16) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let new_key = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &new_key,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.crt"),
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &new_key,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                &p("server.key"),
                "-out",
                &p("server.csr"),
            ],
        ]
        .concat(),
    );
    std::fs::write(p("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext"),
        "-out",
        &p("server.crt"),
    ]);
    let tls_port = free_port();
    let server = Server::start_with(
        build,
        None,
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    (server, tls_port)
}
