//! A raw replica link to a master: the handshake (`PING`, `AUTH`, `REPLCONF listening-port`,
//! `REPLCONF capa eof capa psync2`), `PSYNC`, the snapshot (disk-based `$<len>` or diskless
//! `$EOF:<mark>`), then the command stream's bytes as they arrive and `REPLCONF ACK`. It keeps
//! no state of the stream: the caller counts offsets and decides when to ack.
//!
//! Every wait is bounded: the handshake and the snapshot give up after [`Replica::wait`] of
//! silence (the master sends a `\n` about once a second while it prepares a snapshot), and
//! [`Replica::read`] returns `Ok(0)` after [`Replica::poll`] without bytes.

use std::io::{self, Read, Write};
use std::time::Duration;

use redis::ConnectionAddr;

use super::socket::Socket;
use crate::replay::endpoint::{Endpoint, Tls};

/// The input buffer: the largest reply line taken, and the size of the snapshot's chunks.
const BUF: usize = 64 << 10;
/// A diskless transfer's end mark: 40 characters.
const MARK: usize = 40;

/// Why the link failed, in words naming the server (its URL without credentials).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL or the TLS settings cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Connecting, the TLS handshake, or reading and writing the link failed (a closed link, a
    /// timeout).
    #[error("{server}: {what}")]
    Link { server: String, what: String },
    /// The master answered a step with an error reply.
    #[error("{server}: {step} refused: {said}")]
    Refused {
        server: String,
        step: &'static str,
        said: String,
    },
    /// `-NOMASTERLINK`: the master (itself a replica) has no link to its own master; try later.
    #[error("{server}: not ready to serve replicas, try later (no link to its own master): {said}")]
    NoMasterLink { server: String, said: String },
    /// `-LOADING`: the master is loading its dataset; try later.
    #[error("{server}: not ready to serve replicas, try later (loading its dataset): {said}")]
    Loading { server: String, said: String },
    /// The master said something the protocol does not have there.
    #[error("{server}: unexpected reply {said:?} to {step}")]
    Protocol {
        server: String,
        step: &'static str,
        said: String,
    },
    /// Writing the snapshot where the caller asked failed.
    #[error("writing the snapshot: {0}")]
    Output(io::Error),
}

impl Error {
    /// Whether asking again later may succeed (`-LOADING`, `-NOMASTERLINK`).
    pub fn try_later(&self) -> bool {
        matches!(self, Error::NoMasterLink { .. } | Error::Loading { .. })
    }
}

/// How the master answered `PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `+FULLRESYNC`: a snapshot follows ([`Replica::snapshot`]); it holds the data at stream
    /// offset `offset`, so the first stream byte after it has offset `offset + 1`.
    Full { replid: String, offset: u64 },
    /// `+CONTINUE [replid]`: the stream continues from the offset asked for, at once. The
    /// replid is there when the master speaks psync2 (4.0+); a different one than asked for
    /// means the master's history changed id (a failover) while continuing it.
    Continue { replid: Option<String> },
}

/// One replica link: a socket, the bytes read but not yet taken, and the timeouts.
pub struct Replica {
    sock: Socket,
    server: String,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    wait: Duration,
    poll: Duration,
    timeout: Option<Duration>,
}

impl Replica {
    /// Connects to `url` (as replay takes it: `redis://[user:pass@]host:port`, `rediss://`
    /// with `tls`, the password from `REDISCLI_AUTH` when the URL has none) and makes the
    /// handshake: `PING`, `AUTH`, `REPLCONF listening-port` (our own port),
    /// `REPLCONF capa eof capa psync2`.
    pub fn connect(url: &str, tls: &Tls) -> Result<Replica, Error> {
        let usage = |e: String| Error::Usage(format!("{}: {e}", crate::text::mask_url(url)));
        crate::text::check_url(url).map_err(|e| usage(e.to_string()))?;
        let endpoint = Endpoint::parse(url, tls).map_err(|e| usage(e.to_string()))?;
        let server = endpoint.redacted();
        let info = endpoint.info();
        let link = |e: io::Error| Error::Link {
            server: server.clone(),
            what: format!("cannot connect to {}: {e}", endpoint.address()),
        };
        let sock = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Socket::open(host, *port, None),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => Socket::open(host, *port, Some((tls, *insecure))),
            _ => return Err(usage("a replica link needs a TCP address".into())),
        }
        .map_err(link)?;
        let mut replica = Replica {
            sock,
            server: server.clone(),
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            wait: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            timeout: None,
        };
        let settings = info.redis_settings();
        replica.hello(settings.username(), settings.password())?;
        Ok(replica)
    }

    /// The server's URL without credentials.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The longest silence the handshake, `PSYNC` and the snapshot accept (30 s by default).
    pub fn wait(&mut self, d: Duration) -> &mut Self {
        self.wait = d;
        self
    }

    /// How long [`Replica::read`] waits for bytes before it returns `Ok(0)` (1 s by default).
    pub fn poll(&mut self, d: Duration) -> &mut Self {
        self.poll = d;
        self
    }

    fn hello(&mut self, user: Option<&str>, password: Option<&str>) -> Result<(), Error> {
        let pong = self.send(&[b"PING"], "PING")?;
        if pong.starts_with('-') && password.is_none() {
            return Err(self.refused("PING", pong));
        }
        if let Some(password) = password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            auth.extend(user.map(str::as_bytes));
            auth.push(password.as_bytes());
            self.expect_ok(&auth, "AUTH")?;
        }
        let port = self.sock.local_port().to_string();
        self.expect_ok(
            &[b"REPLCONF", b"listening-port", port.as_bytes()],
            "REPLCONF listening-port",
        )?;
        self.expect_ok(
            &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
            "REPLCONF capa",
        )
    }

    /// `PSYNC ? -1` (`None`: a full resync) or `PSYNC <replid> <offset>`, the offset being the
    /// first byte wanted. The master's `\n` keepalives before its answer are skipped.
    pub fn psync(&mut self, from: Option<(&str, u64)>) -> Result<Start, Error> {
        let (replid, offset) = match from {
            Some((id, off)) => (id.to_string(), off.to_string()),
            None => ("?".to_string(), "-1".to_string()),
        };
        let said = self.send(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()], "PSYNC")?;
        let words: Vec<&str> = said.split_ascii_whitespace().collect();
        match words.as_slice() {
            ["+FULLRESYNC", replid, offset] if offset.parse::<u64>().is_ok() => Ok(Start::Full {
                replid: replid.to_string(),
                offset: offset.parse().unwrap_or_default(),
            }),
            ["+CONTINUE"] => Ok(Start::Continue { replid: None }),
            ["+CONTINUE", replid] => Ok(Start::Continue {
                replid: Some(replid.to_string()),
            }),
            _ if said.starts_with('-') => Err(self.refused("PSYNC", said)),
            _ => Err(self.unexpected("PSYNC", said)),
        }
    }

    /// After [`Start::Full`]: the snapshot (an RDB file), disk-based (`$<len>`) or diskless
    /// (`$EOF:<mark>` … mark), written to `out` in chunks as it arrives; returns its length.
    /// The `\n` keepalives before the `$` line are skipped; a `-` line there (the master
    /// aborted) is an error.
    ///
    /// After a diskless transfer the master sends no commands until it gets the first
    /// `REPLCONF ACK`: call [`Replica::ack`] with the `+FULLRESYNC` offset right after this.
    pub fn snapshot(&mut self, out: &mut dyn Write) -> Result<u64, Error> {
        const STEP: &str = "the snapshot";
        let header = self.reply(STEP)?;
        if header.starts_with('-') {
            return Err(self.refused(STEP, header));
        }
        let Some(size) = header.strip_prefix('$') else {
            return Err(self.unexpected(STEP, header));
        };
        if let Some(mark) = size.strip_prefix("EOF:") {
            if mark.len() != MARK {
                return Err(self.unexpected(STEP, header));
            }
            return self.until_mark(mark.as_bytes(), out);
        }
        match size.parse::<u64>() {
            Ok(len) => self.exactly(len, out).map(|()| len),
            Err(_) => Err(self.unexpected(STEP, header)),
        }
    }

    /// The command stream's bytes as they arrive: `Ok(0)` when none came within the poll
    /// time (or a signal came first), an error when the link is closed.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.start < self.end {
            let n = buf.len().min(self.end - self.start);
            buf[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        self.set_timeout(self.poll)?;
        match self.sock.read(buf) {
            Ok(0) if !buf.is_empty() => Err(closed()),
            // A signal (Ctrl-C) is the caller's to look at: nothing read.
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => Ok(0),
            got => got,
        }
    }

    /// `REPLCONF ACK <offset>`: the stream has been processed up to byte `offset`. It has no
    /// reply.
    pub fn ack(&mut self, offset: u64) -> io::Result<()> {
        let offset = offset.to_string();
        self.write_command(&[b"REPLCONF", b"ACK", offset.as_bytes()])
    }

    fn write_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.set_timeout(self.wait)?;
        self.sock.write_all(&crate::resp::encode(args))?;
        self.sock.flush()
    }

    /// Sends a command, returns its reply line.
    fn send(&mut self, args: &[&[u8]], step: &'static str) -> Result<String, Error> {
        self.write_command(args).map_err(|e| self.link(step, e))?;
        self.reply(step)
    }

    fn expect_ok(&mut self, args: &[&[u8]], step: &'static str) -> Result<(), Error> {
        match self.send(args, step)? {
            ok if ok == "+OK" => Ok(()),
            no if no.starts_with('-') => Err(self.refused(step, no)),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// The next reply line without its line end, the master's empty keepalive lines skipped.
    fn reply(&mut self, step: &'static str) -> Result<String, Error> {
        loop {
            let at = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n');
            let Some(at) = at else {
                if self.start == 0 && self.end == BUF {
                    let said = String::from_utf8_lossy(&self.buf[..80]).into_owned();
                    return Err(self.unexpected(step, said + "…"));
                }
                self.fill(step)?;
                continue;
            };
            let line = &self.buf[self.start..self.start + at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = String::from_utf8_lossy(line).into_owned();
            self.start += at + 1;
            if !text.is_empty() {
                return Ok(text);
            }
        }
    }

    /// Reads more bytes after those held, moved to the buffer's start; the wait is bounded.
    fn fill(&mut self, step: &'static str) -> Result<(), Error> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let got = self.set_timeout(self.wait).and_then(|()| {
            match self.sock.read(&mut self.buf[self.end..]) {
                Ok(0) => Err(closed()),
                got => got,
            }
        });
        match got {
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(self.link(step, e)),
        }
    }

    /// A disk-based snapshot: exactly `len` bytes.
    fn exactly(&mut self, len: u64, out: &mut dyn Write) -> Result<(), Error> {
        let mut left = len;
        while left > 0 {
            if self.start == self.end {
                self.fill("the snapshot")?;
            }
            let n = (self.end - self.start).min(usize::try_from(left).unwrap_or(usize::MAX));
            out.write_all(&self.buf[self.start..self.start + n])
                .map_err(Error::Output)?;
            self.start += n;
            left -= n as u64;
        }
        Ok(())
    }

    /// A diskless snapshot: everything up to `mark`, which ends the master's last write (it
    /// sends nothing more before our first ACK). The last 40 bytes seen are held back until
    /// more come.
    fn until_mark(&mut self, mark: &[u8], out: &mut dyn Write) -> Result<u64, Error> {
        let mut written = 0u64;
        loop {
            let held = &self.buf[self.start..self.end];
            if held.ends_with(mark) {
                let body = held.len() - MARK;
                out.write_all(&held[..body]).map_err(Error::Output)?;
                self.start = self.end;
                return Ok(written + body as u64);
            }
            if held.len() > MARK {
                let body = held.len() - MARK;
                out.write_all(&held[..body]).map_err(Error::Output)?;
                written += body as u64;
                self.start += body;
            }
            self.fill("the snapshot")?;
        }
    }

    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        if self.timeout != Some(d) {
            self.sock.set_timeout(d)?;
            self.timeout = Some(d);
        }
        Ok(())
    }

    fn link(&self, step: &'static str, e: io::Error) -> Error {
        let what = if timed_out(&e) {
            let secs = self.wait.as_secs_f64();
            format!("no answer within {secs} s during {step}")
        } else {
            format!("{e} during {step}")
        };
        Error::Link {
            server: self.server.clone(),
            what,
        }
    }

    /// An error reply to `step`: "try later" ones by their names, whatever the step.
    fn refused(&self, step: &'static str, said: String) -> Error {
        let said = said.strip_prefix('-').unwrap_or(&said).to_string();
        let server = self.server.clone();
        if said.starts_with("NOMASTERLINK") {
            return Error::NoMasterLink { server, said };
        }
        if said.starts_with("LOADING") {
            return Error::Loading { server, said };
        }
        Error::Refused { server, step, said }
    }

    fn unexpected(&self, step: &'static str, said: String) -> Error {
        Error::Protocol {
            server: self.server.clone(),
            step,
            said,
        }
    }
}

/// Whether a command of the stream is the master's `REPLCONF GETACK` (answer with an ACK now).
pub fn is_getack(cmd: &crate::resp::parse::Cmd<'_>) -> bool {
    cmd.name().eq_ignore_ascii_case(b"replconf")
        && cmd
            .arg(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the master closed the link")
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
