//! Exactly-once application of AOF commands to a standalone target.
//!
//! A replayed `INCR` or `LPUSH` must never run twice, even when the run is cut (the tool killed,
//! the connection lost, the target killed and restarted from its own persistence) with a batch
//! in flight. So every batch is one transaction together with a marker of how far it goes:
//!
//! ```text
//! WATCH <progress key>   GET <progress key>   MULTI          (one round trip)
//! [SELECT db] cmd ...  SELECT <url db>  SET <progress key> "<offset> <db>"  EXEC
//! ```
//!
//! The target applies the commands and the marker together or not at all, so its progress key
//! always says exactly up to which offset of the log it holds the commands: the offset after
//! the batch's last command (across the files of a multi-part AOF, in load order) and the
//! source database the log is in there. A batch is sent only when the key holds what the run
//! last saw (the `GET` before `MULTI`); the `WATCH` makes the `EXEC` fail if anything changed
//! the key in between (a batch of a lost connection that the target still executed). A batch
//! whose answer is lost is sent again on a new connection, and that `GET` tells whether the
//! first attempt was applied: nothing is applied twice, nothing is skipped. A resumed run reads
//! the key from the target (the checkpoint file is only a hint) and continues after it; a
//! completed run deletes it.
//!
//! An AOF transaction (`MULTI … EXEC` in the log) goes into one batch whole, never split. Error
//! replies inside `EXEC` (a `WRONGTYPE`...) are counted as failed commands, as the rest of the
//! transaction is applied. An error when a command is queued (an unknown command, a wrong
//! arity: `EXECABORT`, nothing applied) makes the batch go again one AOF command (or
//! transaction) at a time, each with its own marker, so that only the refused one fails.
//! `LOADING`, `BUSY` and the like are waited out (up to `--retry-timeout`).

use std::io::Write;
use std::time::{Duration, Instant};

use redis::Value;

use super::endpoint::Endpoint;
use super::node::recv_replies;
use super::unit::{Outcome, Redirect, classify};

/// The target's key that says how far the log is applied (run `run_id`).
pub fn progress_key(run_id: u64) -> String {
    format!("rdbtool-progress:{run_id:x}")
}

/// A position in the log: an offset across its files (in load order) and the source database
/// the log is in there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub offset: u64,
    pub db: u64,
}

impl Mark {
    fn encode(&self) -> String {
        format!("{} {}", self.offset, self.db)
    }

    fn parse(v: &[u8]) -> Option<Mark> {
        let text = std::str::from_utf8(v).ok()?;
        let (offset, db) = text.split_once(' ')?;
        Some(Mark {
            offset: offset.parse().ok()?,
            db: db.parse().ok()?,
        })
    }
}

/// One command of a batch: the target database it runs in, its bytes and key (for messages).
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    pub db: u64,
    pub raw: &'a [u8],
    pub key: &'a [u8],
}

/// What became of a batch.
#[derive(Debug)]
pub enum Sent {
    /// Applied; the error replies inside `EXEC` (command index, text), and the replies read.
    Applied {
        errors: Vec<(usize, String)>,
        replies: u64,
    },
    /// Applied, as the progress key says, but its replies were lost with the connection.
    RepliesLost,
    /// Refused when queued (`EXECABORT`): nothing applied. The first refusal (command index,
    /// text).
    Aborted(usize, String),
}

/// What one try found.
enum Try<T> {
    Done(T),
    /// Not done; try again after a pause (the target is loading, busy, or the key changed
    /// under `WATCH`).
    Wait(String),
    /// Refused in a way no retry helps with.
    Fatal(String),
}

/// The role of a queued command's reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Select,
    Command(usize),
    Marker,
}

pub struct Sender {
    endpoint: Endpoint,
    conn: Option<redis::Connection>,
    key: Vec<u8>,
    /// The database of the progress key: the URL's, which every connection starts in and
    /// returns to at the end of each batch.
    home: u64,
    /// What the target's progress key holds (None: no batch applied yet).
    pub applied: Option<Mark>,
    retry_timeout: Duration,
    wire: Vec<u8>,
    roles: Vec<Role>,
}

impl Sender {
    pub fn new(endpoint: Endpoint, run_id: u64, retry_timeout: Duration) -> Sender {
        Sender {
            home: endpoint.db().max(0) as u64,
            endpoint,
            conn: None,
            key: progress_key(run_id).into_bytes(),
            applied: None,
            retry_timeout,
            wire: Vec::new(),
            roles: Vec::new(),
        }
    }

    pub fn key_name(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.conn.is_none() {
            self.conn = Some(self.endpoint.connect()?);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Runs `f` until it answers, reconnecting after a lost connection and waiting out a
    /// loading or busy target, up to the retry timeout (or `stop`).
    fn persist<T>(
        &mut self,
        stop: &dyn Fn() -> bool,
        mut f: impl FnMut(&mut Sender) -> redis::RedisResult<Try<T>>,
    ) -> Result<T, String> {
        let started = Instant::now();
        loop {
            let why = match f(self) {
                Ok(Try::Done(v)) => return Ok(v),
                Ok(Try::Wait(why)) => why,
                Ok(Try::Fatal(why)) => return Err(why),
                // An error reply: waited out or final.
                Err(e) if e.code().is_some() => {
                    self.conn = None;
                    let text = e.to_string();
                    match wait_or_fail(&format!(
                        "{} {}",
                        e.code().unwrap_or(""),
                        e.detail().unwrap_or("")
                    )) {
                        Some(_) => text,
                        None => return Err(text),
                    }
                }
                // No answer: a new connection.
                Err(e) => {
                    self.conn = None;
                    e.to_string()
                }
            };
            if stop() {
                return Err("interrupted".into());
            }
            if started.elapsed() > self.retry_timeout {
                return Err(format!(
                    "no answer from the target for {:?}: {why}",
                    self.retry_timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The target's progress key (None when it has none).
    pub fn read(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<Mark>, String> {
        let key = self.key.clone();
        self.persist(stop, |s| {
            let got: Value = redis::cmd("GET").arg(&key).query(s.connection()?)?;
            Ok(mark_of(&got, &key))
        })
    }

    /// Deletes the progress key at the end of a completed run.
    pub fn remove(&mut self, stop: &dyn Fn() -> bool) -> Result<(), String> {
        let key = self.key.clone();
        self.persist(stop, |s| {
            redis::cmd("DEL").arg(&key).query::<()>(s.connection()?)?;
            Ok(Try::Done(()))
        })
    }

    /// Applies `cmds` and moves the progress key to `end`, exactly once.
    pub fn apply(
        &mut self,
        cmds: &[Queued<'_>],
        end: Mark,
        stop: &dyn Fn() -> bool,
    ) -> Result<Sent, String> {
        self.pack(cmds, end);
        let sent = self.persist(stop, |s| s.attempt(end))?;
        if !matches!(sent, Sent::Aborted(..)) {
            self.applied = Some(end);
        }
        Ok(sent)
    }

    /// The commands after `MULTI`: each in its database, then the marker and `EXEC`.
    fn pack(&mut self, cmds: &[Queued<'_>], end: Mark) {
        self.wire.clear();
        self.roles.clear();
        let mut db = self.home;
        for (i, c) in cmds.iter().enumerate() {
            if c.db != db {
                db = c.db;
                self.select(db);
            }
            self.wire.extend_from_slice(c.raw);
            self.roles.push(Role::Command(i));
        }
        if db != self.home {
            self.select(self.home);
        }
        let mut set = crate::resp::Command::new("SET");
        set.arg(&self.key).arg(end.encode().as_bytes());
        let _ = set.write_to(&mut self.wire);
        self.roles.push(Role::Marker);
        self.wire.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
    }

    fn select(&mut self, db: u64) {
        let _ = write!(
            self.wire,
            "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n",
            db.to_string().len()
        );
        self.roles.push(Role::Select);
    }

    /// One attempt: `WATCH`, `GET`, `MULTI`; if the key holds what this run last saw, the
    /// packed commands and `EXEC`. A connection left in an unknown state is dropped.
    fn attempt(&mut self, end: Mark) -> redis::RedisResult<Try<Sent>> {
        let mut head = Vec::new();
        for c in [&["WATCH"][..], &["GET"], &["MULTI"]] {
            let mut cmd = crate::resp::Command::new(c[0]);
            if c[0] != "MULTI" {
                cmd.arg(&self.key);
            }
            let _ = cmd.write_to(&mut head);
        }
        let conn = self.connection()?;
        conn.send_packed_command(&head)?;
        let replies = recv_replies(conn, 3)?;
        if let Some(why) = replies.iter().find_map(error_text) {
            // Loading, busy, or refused: whatever state the connection is in goes with it.
            self.conn = None;
            return Ok(match wait_or_fail(&why) {
                Some(wait) => Try::Wait(wait),
                None => Try::Fatal(format!("the target refused WATCH, GET or MULTI: {why}")),
            });
        }
        let found = match mark_of(&replies[1], &self.key) {
            Try::Done(found) => found,
            Try::Wait(w) => return Ok(Try::Wait(w)),
            Try::Fatal(f) => return Ok(Try::Fatal(f)),
        };
        if found == Some(end) && self.applied != Some(end) {
            // Applied by an attempt whose answer was lost.
            self.conn = None;
            return Ok(Try::Done(Sent::RepliesLost));
        }
        if found != self.applied {
            self.conn = None;
            return Ok(Try::Fatal(format!(
                "the target's progress key {} holds {}, not {}: another run writes to it",
                String::from_utf8_lossy(&self.key),
                show(found),
                show(self.applied)
            )));
        }
        let n = self.roles.len() + 1;
        let wire = std::mem::take(&mut self.wire);
        let conn = self.connection()?;
        let sent = conn
            .send_packed_command(&wire)
            .and_then(|()| recv_replies(conn, n));
        self.wire = wire;
        let replies = sent?;
        let (queued, exec) = replies.split_at(self.roles.len());
        Ok(self.outcome(queued, &exec[0]))
    }

    fn outcome(&mut self, queued: &[Value], exec: &Value) -> Try<Sent> {
        let count = queued.len() as u64 + 3;
        match exec {
            Value::Array(results) => {
                let errors = self
                    .roles
                    .iter()
                    .zip(results)
                    .filter_map(|(role, r)| match (role, error_text(r)) {
                        (Role::Command(i), Some(e)) => Some((*i, e)),
                        _ => None,
                    })
                    .collect();
                Try::Done(Sent::Applied {
                    errors,
                    replies: count + results.len() as u64,
                })
            }
            // The key changed under WATCH: read it again.
            Value::Nil => Try::Wait("the progress key changed during the batch".into()),
            _ => {
                let refused = self.roles.iter().zip(queued).find_map(|(role, r)| {
                    let e = error_text(r)?;
                    Some((*role, e))
                });
                match refused {
                    Some((_, why)) if wait_or_fail(&why).is_some() => Try::Wait(why),
                    Some((Role::Command(i), why)) => Try::Done(Sent::Aborted(i, why)),
                    Some((_, why)) => {
                        Try::Fatal(format!("the target refused our own command: {why}"))
                    }
                    None => Try::Wait(format!(
                        "EXEC answered {}",
                        error_text(exec).unwrap_or_else(|| format!("{exec:?}"))
                    )),
                }
            }
        }
    }
}

fn error_text(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(
            format!("{} {}", e.code(), e.details().unwrap_or(""))
                .trim_end()
                .to_string(),
        ),
        _ => None,
    }
}

/// Some(why) when an error reply means "not now" (loading, busy...), as the replay waits out.
fn wait_or_fail(error: &str) -> Option<String> {
    let (code, details) = error.split_once(' ').unwrap_or((error, ""));
    match classify(code, details, &super::unit::Form::Raw) {
        Outcome::Retry(Redirect::Wait(w)) => Some(w),
        _ => None,
    }
}

fn mark_of(v: &Value, key: &[u8]) -> Try<Option<Mark>> {
    match v {
        Value::Nil => Try::Done(None),
        Value::BulkString(b) => match Mark::parse(b) {
            Some(m) => Try::Done(Some(m)),
            None => Try::Fatal(format!(
                "the target's key {} holds {:?}, not a replay's progress",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(b)
            )),
        },
        other => match error_text(other) {
            Some(e) if wait_or_fail(&e).is_some() => Try::Wait(e),
            Some(e) => Try::Fatal(e),
            None => Try::Fatal(format!("GET answered {other:?}")),
        },
    }
}

fn show(m: Option<Mark>) -> String {
    match m {
        Some(m) => format!("offset {} (db {})", m.offset, m.db),
        None => "nothing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_back() {
        let m = Mark { offset: 123, db: 4 };
        assert_eq!(Mark::parse(m.encode().as_bytes()), Some(m));
        assert_eq!(Mark::parse(b"12"), None);
        assert_eq!(progress_key(0xab), "rdbtool-progress:ab");
    }
}
