//! Where commands go: a server URL (`redis://`, `rediss://`) turned into connections by the
//! `redis` crate (AUTH, SELECT, TLS), and what the server says of itself.

use std::time::Duration;

use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use crate::release::Release;

/// How to reach one server; cluster nodes found later share its credentials and TLS settings.
#[derive(Clone)]
pub struct Endpoint {
    client: Client,
    /// The URL without its credentials, fit to print.
    shown: String,
}

/// TLS settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM certificate(s) of the authority that signed the server's certificate.
    pub cacert: Option<Vec<u8>>,
    /// Accept any certificate (no checks at all).
    pub insecure: bool,
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Endpoint {
    /// `redis://[user:pass@]host:port[/db]` or `rediss://...`; the password may come from
    /// `REDISCLI_AUTH` instead of the URL.
    pub fn parse(url: &str, tls: &Tls) -> redis::RedisResult<Endpoint> {
        // rustls needs one process-wide crypto provider; the first call installs ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut info = url.into_connection_info()?;
        if info.redis_settings().password().is_none()
            && let Ok(password) = std::env::var("REDISCLI_AUTH")
            && !password.is_empty()
        {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        if tls.insecure
            && let ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } = info.addr().clone()
        {
            info = info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            });
        }
        let client = match (&tls.cacert, tls.insecure) {
            (Some(ca), false) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            )?,
            _ => Client::open(info)?,
        };
        Ok(Endpoint {
            client,
            shown: crate::text::mask_url(url),
        })
    }

    /// The parsed URL: address, TLS flags, credentials (`REDISCLI_AUTH` included), database;
    /// for links the `redis` crate does not make (a replica's).
    pub fn info(&self) -> &ConnectionInfo {
        self.client.get_connection_info()
    }

    /// The database the URL names.
    pub fn db(&self) -> i64 {
        self.info().redis_settings().db()
    }

    /// `host:port` of this endpoint.
    pub fn address(&self) -> String {
        match self.info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => format!("{other:?}"),
        }
    }

    /// The URL without its credentials, fit to print.
    pub fn redacted(&self) -> String {
        self.shown.clone()
    }

    /// The same credentials and TLS settings at another address, database 0 (cluster nodes).
    pub fn at(&self, host: &str, port: u16) -> redis::RedisResult<Endpoint> {
        let info = self.info().clone();
        let addr = match info.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host.to_string(), port),
        };
        let scheme = match addr {
            ConnectionAddr::TcpTls { .. } => "rediss",
            _ => "redis",
        };
        let settings = info.redis_settings().clone().set_db(0);
        let info = info.set_addr(addr).set_redis_settings(settings);
        Ok(Endpoint {
            client: Client::open(info)?,
            shown: format!("{scheme}://{host}:{port}/0"),
        })
    }

    /// The first connection, with failures explained: set up, handshake (AUTH, SELECT...) and a
    /// `PING` answered within [`CONNECT_TIMEOUT`], else "no answer". Over TLS, a handshake not
    /// done within a second is looked into: a port that answers `PING` in plain text fails at
    /// once. `stop` is asked every tenth of a second (Ctrl-C); a connection given up on is left
    /// to its thread, which ends at its own timeouts.
    pub fn connect_explained(
        &self,
        stop: &dyn Fn() -> bool,
    ) -> Result<redis::Connection, ConnectError> {
        let tls = matches!(self.info().addr(), ConnectionAddr::TcpTls { .. });
        let (tx, rx) = std::sync::mpsc::channel();
        let me = self.clone();
        std::thread::spawn(move || tx.send(me.connect().and_then(answers)));
        let started = std::time::Instant::now();
        let mut looked = false;
        let got = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(got) => break got,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(std::io::Error::other("connection thread ended").into());
                }
                Err(_) if stop() => return Err(ConnectError::Interrupted),
                Err(_) if started.elapsed() >= CONNECT_TIMEOUT => {
                    return Err(ConnectError::Failed(self.no_answer()));
                }
                Err(_) if tls && !looked && started.elapsed() >= Duration::from_secs(1) => {
                    looked = true;
                    if plain_text(&self.address()) {
                        return Err(ConnectError::Failed(PLAIN_TEXT.into()));
                    }
                }
                Err(_) => {}
            }
        };
        got.map_err(|e| ConnectError::Failed(self.reason(&e)))
    }

    /// Why connecting failed, in words, after the URL: a TLS handshake with a port that does
    /// not speak TLS, a service that does not speak RESP (an HTTP server, say).
    pub fn explain(&self, e: &redis::RedisError) -> String {
        format!("{}: {}", self.redacted(), self.reason(e))
    }

    fn no_answer(&self) -> String {
        let secs = CONNECT_TIMEOUT.as_secs();
        format!("no answer from {} within {secs} s", self.address())
    }

    fn reason(&self, e: &redis::RedisError) -> String {
        let tls = matches!(self.info().addr(), ConnectionAddr::TcpTls { .. });
        if e.is_timeout() && !tls {
            return self.no_answer();
        }
        if e.kind() == redis::ErrorKind::Parse {
            let said = match probe(&self.address()) {
                Some(a) if !tls => format!(": it answered \"{}\"", printable(&a)),
                _ => String::new(),
            };
            return format!("the target does not speak RESP (not a Redis or Valkey server?){said}");
        }
        if tls && e.is_io_error() {
            return match plain_text(&self.address()) {
                true => PLAIN_TEXT.to_string(),
                false => format!("the TLS handshake failed: {e}"),
            };
        }
        e.to_string()
    }

    pub fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(Duration::from_secs(60)))?;
        conn.set_write_timeout(Some(Duration::from_secs(60)))?;
        Ok(conn)
    }
}

/// Why [`Endpoint::connect_explained`] gave up.
#[derive(Debug)]
pub enum ConnectError {
    /// `stop` said so.
    Interrupted,
    /// Why, in words (without the URL).
    Failed(String),
}

/// `conn` once it has answered a `PING`; an error reply (an ACL without PING...) is an answer.
fn answers(mut conn: redis::Connection) -> redis::RedisResult<redis::Connection> {
    match redis::cmd("PING").query::<Value>(&mut conn) {
        Err(e) if e.code().is_none() => Err(e),
        _ => Ok(conn),
    }
}

/// What a server says of itself, as far as replaying into it goes.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub target: Release,
    pub cluster: bool,
    /// The largest bulk string it accepts.
    pub max_bulk: u64,
}

/// Reads INFO server / cluster and `proto-max-bulk-len` (512 MiB when CONFIG is not allowed).
pub fn server_facts(conn: &mut redis::Connection) -> redis::RedisResult<ServerFacts> {
    let info: String = redis::cmd("INFO").arg("server").query(conn)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let target = match (field("valkey_version"), field("redis_version")) {
        (Some(v), _) => Release::version(true, v),
        (None, Some(v)) => Release::version(field("server_name") == Some("valkey"), v),
        (None, None) => None,
    }
    .unwrap_or_default();
    let cluster_info: String = redis::cmd("INFO")
        .arg("cluster")
        .query(conn)
        .unwrap_or_default();
    let cluster = cluster_info.contains("cluster_enabled:1");
    let max_bulk = redis::cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .query::<Value>(conn)
        .ok()
        .and_then(|v| config_number(&v))
        .unwrap_or(512 << 20);
    Ok(ServerFacts {
        target,
        cluster,
        max_bulk,
    })
}

/// The number in a CONFIG GET reply, as an array (RESP2) or a map (RESP3).
pub(crate) fn config_number(v: &Value) -> Option<u64> {
    let text = match v {
        Value::Array(items) => items.get(1)?,
        Value::Map(pairs) => &pairs.first()?.1,
        _ => return None,
    };
    match text {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// `used_memory` and `maxmemory` (0: no limit) from INFO memory.
pub fn memory(conn: &mut redis::Connection) -> Option<(u64, u64)> {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).ok()?;
    let field = |name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some((field("used_memory")?, field("maxmemory").unwrap_or(0)))
}

const PLAIN_TEXT: &str =
    "the TLS handshake failed: the port answers in plain text: use redis://, or the TLS port";

/// Whether `addr` answers `PING` in plain text (a RESP reply).
fn plain_text(addr: &str) -> bool {
    probe(addr).is_some_and(|a| a.starts_with(b"+") || a.starts_with(b"-"))
}

/// The first line of what `addr` answers in plain text to `PING` within a second, if anything.
fn probe(addr: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let at = addr.to_socket_addrs().ok()?.next()?;
    let wait = Duration::from_secs(1);
    let mut s = std::net::TcpStream::connect_timeout(&at, wait).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
    let line = buf[..n].split(|&b| b == b'\n').next()?;
    Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// ASCII text as is, other bytes as `\xNN`.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b' '..=b'~' => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}
