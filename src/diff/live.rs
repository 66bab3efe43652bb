//! A live server as one side of a comparison: SCAN each database that has keys, then DUMP and
//! the expiry of every key in pipelined batches; payloads are decoded by our own reader (no
//! DEBUG command needed), on worker threads while the next batch travels.
//!
//! Expiry is read as an absolute time: PEXPIRETIME where the server has it (7.0+), else the
//! server's TIME plus PTTL, which is exact up to the time the batch takes to run.

use std::collections::HashMap;

use redis::{Connection, Value as Reply};

use super::fingerprint::Fingerprinter;
use super::{Each, Error, Options, Print, Value};
use crate::rdb::{self, Format, ObjectType, payload};
use crate::replay::endpoint::{ConnectError, Endpoint, Tls};
use crate::scan::ordered;

/// Keys asked for per SCAN call, and so per pipelined batch.
const SCAN_COUNT: u64 = 1000;

pub struct LiveSide {
    label: String,
    conn: Connection,
    /// The database named in the URL: only that one is compared.
    only_db: Option<u64>,
    selected: Option<u64>,
    pexpiretime: bool,
}

/// Keys of one database fetched together.
struct Batch {
    db: u64,
    keys: Vec<Fetched>,
}

struct Fetched {
    key: Vec<u8>,
    payload: Vec<u8>,
    expire: Option<i64>,
}

/// Per key of a batch; None for a value the server sent empty.
type Done = Result<Vec<Option<Found>>, String>;

/// Type, identity, fingerprint.
type Found = (ObjectType, u128, u128);

/// The database number in a URL's path, if it names one.
fn url_db(url: &str) -> Option<u64> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.starts_with("unix") || scheme.contains("+unix") {
        return None;
    }
    let path = &rest[rest.find('/')? + 1..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.parse().ok()
}

/// Whether a side argument names a server rather than a file.
pub fn is_url(s: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "valkey://",
        "valkeys://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// The type of a DUMP payload (its first byte, read by its version's flavour).
fn payload_type(p: &[u8]) -> Option<ObjectType> {
    let at = p.len().checked_sub(10)?;
    let version = u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]);
    ObjectType::from_byte(Format::from_payload_version(version), *p.first()?)
}

impl LiveSide {
    pub fn connect(url: &str) -> Result<Self, Error> {
        let label = crate::text::mask_url(url);
        crate::text::check_url(url).map_err(|message| Error::Live {
            side: label.clone(),
            message: message.into(),
        })?;
        let fail = |message| Error::Live {
            side: label.clone(),
            message,
        };
        // valkey:// is the same protocol.
        let url_fixed = url
            .strip_prefix("valkey")
            .map_or_else(|| url.to_string(), |rest| format!("redis{rest}"));
        // Connected as replay connects: bounded, and its failures explained.
        let endpoint =
            Endpoint::parse(&url_fixed, &Tls::default()).map_err(|e| fail(e.to_string()))?;
        let mut conn = endpoint.connect_explained(&|| false).map_err(|e| match e {
            ConnectError::Failed(why) => fail(why),
            ConnectError::Interrupted => fail("interrupted".into()),
        })?;
        let fail = |error| Error::Redis {
            side: label.clone(),
            error,
        };
        let server: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut conn)
            .map_err(fail)?;
        let major = info_field(&server, "redis_version")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .unwrap_or(0);
        let only_db = url_db(url);
        Ok(LiveSide {
            label,
            conn,
            only_db,
            selected: only_db.or(Some(0)),
            pexpiretime: major >= 7,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn redis_error(&self, error: redis::RedisError) -> Error {
        Error::Redis {
            side: self.label.clone(),
            error,
        }
    }

    fn select(&mut self, db: u64) -> Result<(), Error> {
        if self.selected != Some(db) {
            redis::cmd("SELECT")
                .arg(db)
                .exec(&mut self.conn)
                .map_err(|e| self.redis_error(e))?;
            self.selected = Some(db);
        }
        Ok(())
    }

    /// The databases to read: the URL's, else every one INFO keyspace lists; and the filter's.
    fn dbs(&mut self, opts: &Options) -> Result<Vec<u64>, Error> {
        if let Some(db) = self.only_db {
            return Ok(vec![db]
                .into_iter()
                .filter(|&d| opts.filter.db(d))
                .collect());
        }
        let keyspace: String = redis::cmd("INFO")
            .arg("keyspace")
            .query(&mut self.conn)
            .map_err(|e| self.redis_error(e))?;
        let mut dbs: Vec<u64> = keyspace
            .lines()
            .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
            .filter(|&d| opts.filter.db(d))
            .collect();
        dbs.sort_unstable();
        Ok(dbs)
    }

    /// One SCAN step in the selected database: the next cursor and the names it returned.
    fn scan_step(&mut self, cursor: &str, opts: &Options) -> Result<(String, Vec<Vec<u8>>), Error> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("COUNT").arg(SCAN_COUNT);
        if let [glob] = opts.filter.globs.as_slice() {
            cmd.arg("MATCH").arg(glob.as_slice());
        }
        cmd.query(&mut self.conn).map_err(|e| self.redis_error(e))
    }

    /// DUMP and expiry of `keys` in one round trip. Keys gone meanwhile are left out.
    fn fetch(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<Fetched>, Error> {
        let mut pipe = redis::pipe();
        if !self.pexpiretime {
            pipe.cmd("TIME");
        }
        for k in &keys {
            pipe.cmd("DUMP").arg(k.as_slice());
            pipe.cmd(if self.pexpiretime {
                "PEXPIRETIME"
            } else {
                "PTTL"
            })
            .arg(k.as_slice());
        }
        let replies: Vec<Reply> = pipe
            .query(&mut self.conn)
            .map_err(|e| self.redis_error(e))?;
        let mut replies = replies.into_iter();
        let now = if self.pexpiretime {
            0
        } else {
            server_time_ms(replies.next()).ok_or_else(|| self.bad("TIME gave no time"))?
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (dump, ttl) = (replies.next(), replies.next());
            let payload = match dump {
                Some(Reply::BulkString(p)) => p,
                Some(Reply::Nil) => continue,
                other => return Err(self.bad(&format!("DUMP replied {other:?}"))),
            };
            let expire = match ttl {
                // -1: no expiry; -2: the key is gone.
                Some(Reply::Int(-1)) => None,
                Some(Reply::Int(-2)) => continue,
                Some(Reply::Int(t)) if self.pexpiretime => Some(t),
                Some(Reply::Int(t)) => Some(now + t),
                other => return Err(self.bad(&format!("expiry replied {other:?}"))),
            };
            out.push(Fetched {
                key,
                payload,
                expire,
            });
        }
        Ok(out)
    }

    fn bad(&self, message: &str) -> Error {
        Error::Live {
            side: self.label.clone(),
            message: message.to_string(),
        }
    }

    /// Reads every selected key; `each` sees them in SCAN order (a key may come twice: SCAN
    /// promises every key at least once).
    /// Reads every selected key (canonically: payloads carry their own version, so their
    /// bytes are not compared).
    pub fn scan(
        &mut self,
        opts: &Options,
        each: &mut Each<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let dbs = self.dbs(opts)?;
        let seed = opts.seed;
        let mut failed: Option<Error> = None;
        let label = self.label.clone();
        let mut consume_one = |batch: Batch, done: Done| {
            if failed.is_some() {
                return;
            }
            let done = match done {
                Ok(d) => d,
                Err(message) => {
                    failed = Some(Error::Live {
                        side: label.clone(),
                        message,
                    });
                    return;
                }
            };
            for (f, d) in batch.keys.iter().zip(done) {
                let Some((ty, id, value)) = d else {
                    continue;
                };
                if !opts.filter.key(batch.db, &f.key, ty.kind()) {
                    continue;
                }
                let bytes = f.payload.len().saturating_sub(11) as u64;
                let print = Print {
                    db: batch.db,
                    key: &f.key,
                    kind: ty.kind(),
                    expire: f.expire,
                    id,
                    value,
                    bytes,
                    loc: bytes,
                };
                each(&print);
            }
        };
        let work = |batches: &[Batch]| -> Vec<Done> {
            batches.iter().map(|b| fingerprint(seed, b)).collect()
        };
        let mut consume = |batches: Vec<Batch>, done: Vec<Done>| {
            for (batch, done) in batches.into_iter().zip(done) {
                consume_one(batch, done);
            }
        };
        let mut walk_error = None;
        let workers = ordered::workers_for(1);
        ordered::run(workers, &work, |jobs| {
            let mut keys_seen = 0u64;
            let r = self.each_batch(&dbs, opts, |side, db, names| {
                keys_seen += names.len() as u64;
                progress(keys_seen);
                let keys = side.fetch(names)?;
                let bytes = keys.iter().map(|k| k.payload.len() as u64).sum();
                jobs.push(Batch { db, keys }, bytes, &mut consume);
                Ok(())
            });
            walk_error = r.err();
            jobs.finish(&mut consume)
        });
        match walk_error.or(failed) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `f` on every batch of names SCAN returns that the filter's name rules select.
    fn each_batch(
        &mut self,
        dbs: &[u64],
        opts: &Options,
        mut f: impl FnMut(&mut Self, u64, Vec<Vec<u8>>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for &db in dbs {
            self.select(db)?;
            let mut cursor = "0".to_string();
            loop {
                let (next, mut names) = self.scan_step(&cursor, opts)?;
                names.retain(|k| {
                    opts.filter.globs.is_empty()
                        || opts
                            .filter
                            .globs
                            .iter()
                            .any(|g| crate::filter::glob_match(g, k))
                });
                names.retain(|k| opts.filter.regex.as_ref().is_none_or(|r| r.is_match(k)));
                if !names.is_empty() {
                    f(self, db, names)?;
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Finds the names of keys known only by identity (keys of this side the other lacks):
    /// SCANs again and calls `found(position in wanted, db, name)` for each one seen.
    pub fn names(
        &mut self,
        opts: &Options,
        wanted: &HashMap<u128, usize>,
        found: &mut dyn FnMut(usize, u64, &[u8]),
    ) -> Result<(), Error> {
        if wanted.is_empty() {
            return Ok(());
        }
        let dbs = self.dbs(opts)?;
        self.each_batch(&dbs, opts, |_, db, names| {
            for n in names {
                if let Some(&i) = wanted.get(&opts.seed.key(db, &n)) {
                    found(i, db, &n);
                }
            }
            Ok(())
        })
    }

    /// The current value of one key, with its expiry; None if it is gone.
    pub fn value(
        &mut self,
        db: u64,
        key: &[u8],
    ) -> Result<Option<(Value<'static>, Option<i64>)>, Error> {
        self.select(db)?;
        let mut fetched = self.fetch(vec![key.to_vec()])?;
        let Some(f) = fetched.pop() else {
            return Ok(None);
        };
        let ty = payload_type(&f.payload).ok_or_else(|| self.bad("unknown payload type"))?;
        Ok(Some((
            Value::Payload {
                payload: f.payload,
                ty,
            },
            f.expire,
        )))
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Unix ms from a TIME reply (seconds and microseconds as strings).
fn server_time_ms(reply: Option<Reply>) -> Option<i64> {
    let Some(Reply::Array(parts)) = reply else {
        return None;
    };
    let num = |v: &Reply| -> Option<i64> {
        match v {
            Reply::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    };
    let secs = num(parts.first()?)?;
    let micros = num(parts.get(1)?)?;
    Some(secs * 1000 + micros / 1000)
}

/// The identities and fingerprints of a batch of keys, from their DUMP payloads.
fn fingerprint(seed: super::Seed, batch: &Batch) -> Done {
    batch
        .keys
        .iter()
        .map(|f| {
            let ty = payload_type(&f.payload).ok_or("unknown payload type")?;
            let (p, value) = Fingerprinter::with_thread(seed, ty.kind(), |fp| {
                payload::read(&f.payload, fp).map(|p| (p, fp.finish()))
            })
            .map_err(|e| {
                format!(
                    "DUMP payload of key \"{}\" (db {}): {e}",
                    rdb::error::escape(&f.key),
                    batch.db
                )
            })?;
            if !p.crc_ok {
                return Err(format!(
                    "DUMP payload of key \"{}\" (db {}): CRC-64 mismatch",
                    rdb::error::escape(&f.key),
                    batch.db
                ));
            }
            if rdb::value::is_empty_key(p.ty, p.elements) {
                return Ok(None);
            }
            Ok(Some((ty, seed.key(batch.db, &f.key), value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(url_db("redis://localhost:6379/3"), Some(3));
        assert_eq!(
            url_db("redis://:pw@localhost:6379/12?protocol=resp2"),
            Some(12)
        );
        assert_eq!(url_db("redis://localhost:6379"), None);
        assert_eq!(url_db("redis://localhost:6379/"), None);
        assert_eq!(url_db("unix:///tmp/redis.sock"), None);
        assert!(is_url("rediss://h") && !is_url("dump.rdb"));
        assert_eq!(
            server_time_ms(Some(Reply::Array(vec![
                Reply::BulkString(b"1700000000".to_vec()),
                Reply::BulkString(b"123456".to_vec()),
            ]))),
            Some(1_700_000_000_123)
        );
    }
}
