//! The databases a replay writes to, confirmed selectable on the target before anything is
//! sent: from `CONFIG GET databases` where the target allows it, else by `SELECT n` on a
//! control connection. A key of any other database is refused, never written elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use redis::Value;

use super::{Error, Options, Source};
use crate::aof;
use crate::rdb::{Reader, Record, SliceInput};

/// Target database → the source databases that go there.
pub type Needed = BTreeMap<u64, BTreeSet<u64>>;

/// Where keys of source database `db` go: `--db-map`, else the URL's database when it names
/// one other than 0, else the same number.
pub fn target_db(opts: &Options, url_db: i64, db: u64) -> u64 {
    match opts.db_map.get(&db) {
        Some(&to) => to,
        None if url_db > 0 => url_db as u64,
        None => db,
    }
}

/// The databases the source's selected keys (or AOF commands) go to: all to the URL's
/// database when it names one (and --db-map none), else found by a walk over the whole source
/// that skips values; a damaged record ends it (the replay stops there too).
pub fn needed(source: &Source<'_>, opts: &Options, url_db: i64) -> Needed {
    let mut out = Needed::new();
    if url_db > 0 && opts.db_map.is_empty() {
        // Selected when the connection was made.
        out.insert(url_db as u64, BTreeSet::new());
        return out;
    }
    let mut add = |db: u64| {
        out.entry(target_db(opts, url_db, db))
            .or_default()
            .insert(db);
    };
    let keep_db = |db| keep(opts, url_db, db);
    match source {
        Source::Aof(data) => aof_dbs(data, 0, &keep_db, &mut add),
        Source::Rdb(inp) => rdb_dbs(inp.data(), opts, &keep_db, &mut add),
        // Each file starts in database 0, as the server loads each with a fresh client.
        Source::Log(parts) => {
            for p in parts {
                match aof::files::sniff(&p.data[..p.data.len().min(16)]) {
                    aof::files::Sniffed::Rdb => rdb_dbs(p.data, opts, &keep_db, &mut add),
                    _ => aof_dbs(p.data, 0, &keep_db, &mut add),
                }
            }
        }
    }
    out
}

/// The databases of an RDB's selected keys, and of the AOF commands after it.
fn rdb_dbs(data: &[u8], opts: &Options, keep: &dyn Fn(u64) -> bool, add: &mut dyn FnMut(u64)) {
    let Ok(mut reader) = Reader::new(SliceInput::new(data)) else {
        return;
    };
    while let Some(Ok(rec)) = reader.next_record() {
        match rec.record {
            Record::Key { db, key, ty, meta } => {
                let expiry = opts.expiry(meta.expire_ms);
                if opts.filter.key(db, &key, ty.kind()) && !opts.expired(expiry) {
                    add(db);
                }
                if reader.skip_value().is_err() {
                    break;
                }
            }
            Record::Eof { .. } => aof_dbs(data, reader.pos() as usize, keep, add),
            _ => {}
        }
    }
}

/// Whether an AOF command of source database `db` is replayed (`--db` names target databases
/// for AOF commands, as [`super::Replay`] applies it).
fn keep(opts: &Options, url_db: i64, db: u64) -> bool {
    opts.filter.db(target_db(opts, url_db, db))
}

/// The databases of the commands of `data[start..]` (after `SELECT`, as the replay follows it)
/// that `keep` selects.
fn aof_dbs(data: &[u8], start: usize, keep: &dyn Fn(u64) -> bool, add: &mut dyn FnMut(u64)) {
    let mut db = 0u64;
    for cmd in aof::Commands::new(data, start) {
        let Ok(cmd) = cmd else { break };
        if cmd.args[0].eq_ignore_ascii_case(b"SELECT") {
            match aof::select_db(&cmd) {
                Some(n) => db = n,
                None => break,
            }
        } else if keep(db) {
            add(db);
        }
    }
}

/// Confirms that every database of `needed` can be selected on the target (under its
/// `databases`, and `SELECT n` answered OK on the control connection); returns them. Stops
/// with an error naming those that cannot (nothing has been sent).
pub fn confirm(
    conn: &mut redis::Connection,
    needed: &Needed,
    cluster: bool,
    shown: &str,
) -> Result<BTreeSet<u64>, Error> {
    let count = match cluster {
        true => Some(1),
        false => config_databases(conn),
    };
    let mut bad = Vec::new();
    for &db in needed.keys() {
        // Within the count, SELECT still asks: an ACL may refuse a database.
        let refused = match count {
            Some(n) if db >= n => Some(String::new()),
            _ => redis::cmd("SELECT")
                .arg(db)
                .query::<()>(conn)
                .err()
                .map(|e| format!(" (SELECT {db}: {e})")),
        };
        if let Some(why) = refused {
            bad.push((db, why));
        }
    }
    if bad.is_empty() {
        return Ok(needed.keys().copied().collect());
    }
    let has = match count {
        Some(1) if cluster => "a cluster has only database 0".to_string(),
        Some(n) => format!(
            "it has {} (0 to {})",
            crate::text::count(n, "database"),
            n.saturating_sub(1)
        ),
        None => "SELECT refused it, CONFIG GET databases was not allowed".to_string(),
    };
    let list: Vec<String> = bad
        .iter()
        .map(|(db, why)| {
            let from: Vec<String> = needed[db].iter().map(u64::to_string).collect();
            let from = match from[..] {
                [] => String::new(),
                [ref one] if *one == db.to_string() => String::new(),
                _ => format!(" (from source database {})", from.join(", ")),
            };
            format!("{db}{from}{why}")
        })
        .collect();
    Err(Error::Databases(format!(
        "{shown}: the target cannot select {} {}: {has}; nothing was sent (see --db-map, --db)",
        if bad.len() == 1 {
            "database"
        } else {
            "databases"
        },
        list.join(", ")
    )))
}

/// `databases` from `CONFIG GET`, when the target allows it.
fn config_databases(conn: &mut redis::Connection) -> Option<u64> {
    let v: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query(conn)
        .ok()?;
    super::endpoint::config_number(&v)
}
