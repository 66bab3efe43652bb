//! A unit of work: everything that writes one key (or one AOF command), sent and acknowledged
//! as a whole, and sent again as a whole when it has to be retried (with replace semantics
//! when its key may hold what an earlier attempt wrote).

use std::io::Write;
use std::time::Instant;

use redis::Value;

use crate::resp::{Command, parse};

/// How a unit's commands make its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// One `RESTORE key ...`; BUSYKEY means the key existed.
    Restore,
    /// Native commands on the key itself, after `DEL key` (replace semantics).
    Direct,
    /// Native commands on a temporary key in the same slot, then `RENAMENX tmp key` (0 means
    /// the key existed: nothing is overwritten, and the temporary key is deleted afterwards).
    Staged { tmp: Vec<u8> },
    /// A string in one `SET key value [NX] [PXAT ms]`: a nil reply (NX) means the key existed.
    Set,
    /// `DEL tmp` of a staged unit whose key existed: not a key of the source.
    Cleanup,
    /// Commands from an AOF, sent as they are.
    Raw,
    /// FUNCTION LOAD of a library: "already exists" means the library existed.
    Function,
}

pub struct Unit {
    /// Position of the key (or command) in the source, for checkpoints.
    pub seq: u64,
    /// Database on the target.
    pub db: u64,
    pub key: Vec<u8>,
    pub slot: u16,
    /// RESP-encoded commands.
    pub body: Vec<u8>,
    pub commands: u32,
    pub form: Form,
    /// Send with replace semantics: the key may hold what an earlier attempt wrote (no answer
    /// came, or the key was made and the unit must still be sent again), or the replay resumes.
    pub resend: bool,
    /// Sent before: a staged unit's temporary key may hold part of its value, and is deleted
    /// first.
    pub again: bool,
    /// This attempt made the key under its own name (`RENAMENX`/`RENAME` of a staged unit,
    /// `SET`, `RESTORE` or `MSETNX` answered with success).
    pub landed: bool,
    /// `ASK` redirection: the node (index) to send to, each command after `ASKING`.
    pub ask: Option<usize>,
    /// Goes to this node whatever its slot (function libraries go to every master).
    pub pinned: Option<usize>,
    /// When the unit first failed to get an answer (for the retry deadline).
    pub failing_since: Option<Instant>,
    /// Never grouped with other strings into one `MSETNX` (one of a group's keys existed).
    pub alone: bool,
}

impl Unit {
    /// A unit sent for the first time, to wherever its slot is served.
    pub fn new(seq: u64, db: u64, key: Vec<u8>, slot: u16, form: Form, body: Vec<u8>) -> Unit {
        Unit {
            seq,
            db,
            key,
            slot,
            body,
            commands: 1,
            form,
            resend: false,
            again: false,
            landed: false,
            ask: None,
            pinned: None,
            failing_since: None,
            alone: false,
        }
    }
}

/// What became of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    /// The key existed on the target (and `--on-exists` is not replace).
    Exists,
    /// An error reply; the text as the server sent it.
    Failed(String),
    /// Not done; send again (to where the redirection says).
    Retry(Redirect),
    /// Not done: a key of the unit's `MSETNX` group existed. Send again, alone.
    Grouped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved {
        slot: u16,
        addr: String,
    },
    Ask {
        addr: String,
    },
    /// The server is busy or in transition (TRYAGAIN, CLUSTERDOWN, LOADING, READONLY...).
    Wait(String),
    /// No answer: the connection failed.
    Lost(String),
}

/// Replies read for a batch, how many were errors, and how many of those said to send again
/// (redirections, a busy or loading server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replies {
    pub replies: u64,
    pub errors: u64,
    pub retried: u64,
}

/// The role of one reply in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// SELECT / ASKING: an error here fails the unit.
    Control,
    /// A command of the body (or DEL before it).
    Body,
    /// RENAMENX of a staged unit: 0 means the key existed.
    RenameNx,
    /// RENAME of a staged unit sent with replace semantics.
    Rename,
    /// `MSET`/`MSETNX` of this many string units (listed in `members`); for `MSETNX`, 0
    /// means that some key existed and none was set.
    Group(u32),
    /// `DEL` of the keys of this many units (listed in `members`) sent with replace semantics,
    /// before their commands.
    Deletes(u32),
}

/// Most keys, and most bytes, one `MSET`/`MSETNX` writes.
const GROUP_KEYS: usize = 128;
const GROUP_BYTES: usize = 256 << 10;

/// Commands for a batch of units, and which reply belongs to which unit.
#[derive(Default)]
pub struct Packed {
    pub buf: Vec<u8>,
    /// Per reply: the unit it answers (for a group, where its units start in `members`).
    plan: Vec<(u32, Role)>,
    /// The units of each `MSET`/`MSETNX`, one run per group.
    members: Vec<u32>,
}

impl Packed {
    pub fn replies(&self) -> usize {
        self.plan.len()
    }

    /// Encodes `units`; `db` is the connection's selected database (`None` in a cluster, which
    /// has only database 0).
    ///
    /// Outside a cluster, the strings without a TTL of each database are written last, in one
    /// `MSETNX` (or `MSET` with replace semantics) per up to [`GROUP_KEYS`]: the server spends
    /// about as much on reading, dispatching and answering a command as on setting a small
    /// string. (A cluster refuses keys of different slots in one command.) Units are distinct
    /// keys, so their order within a batch does not matter, except for AOF commands, which are
    /// never grouped. Likewise the `DEL`s of units sent with replace semantics go first, one
    /// command per database.
    pub fn new(units: &[Unit], db: &mut Option<u64>) -> Packed {
        // Room for the bodies and what goes around them (SELECT, DEL, RENAMENX, ASKING).
        let room: usize = units
            .iter()
            .map(|u| u.body.len() + 2 * u.key.len() + 96)
            .sum();
        let mut p = Packed {
            buf: Vec::with_capacity(room),
            plan: Vec::with_capacity(units.len() * 2),
            members: Vec::new(),
        };
        let (groups, deletes) = match db {
            Some(_) => (
                Groups::of(units, group_pair, false),
                Groups::of(units, |u| needs_del(u).then_some((&u.key[..], false)), true),
            ),
            None => (Groups::default(), Groups::default()),
        };
        for del in deletes.chunks(units, DELETE_KEYS, |u| u.key.len()) {
            let first = &units[del[0] as usize];
            p.select(del[0], first.db, db);
            let mut c = Command::new("DEL");
            for &i in &del {
                c.arg(&units[i as usize].key);
            }
            let _ = c.write_to(&mut p.buf);
            p.answer_for(&del, Role::Deletes(del.len() as u32));
        }
        for (i, u) in units.iter().enumerate() {
            if groups.has(i) {
                continue;
            }
            let deleted = deletes.has(i);
            let i = i as u32;
            p.select(i, u.db, db);
            let ask = u.ask.is_some();
            match (&u.form, u.resend) {
                (Form::Restore | Form::Set, false)
                | (Form::Raw | Form::Function | Form::Cleanup, _) => p.body(i, u, ask),
                (Form::Restore | Form::Set, true) | (Form::Direct, _) => {
                    if !deleted {
                        p.push(i, Role::Body, Command::new("DEL").arg(&u.key), ask);
                    }
                    p.body(i, u, ask);
                }
                (Form::Staged { tmp }, false) => {
                    if u.again {
                        p.push(i, Role::Body, Command::new("DEL").arg(tmp), ask);
                    }
                    p.body(i, u, ask);
                    p.push(
                        i,
                        Role::RenameNx,
                        Command::new("RENAMENX").arg(tmp).arg(&u.key),
                        ask,
                    );
                }
                (Form::Staged { tmp }, true) => {
                    p.push(i, Role::Body, Command::new("DEL").arg(tmp), ask);
                    p.body(i, u, ask);
                    p.push(
                        i,
                        Role::Rename,
                        Command::new("RENAME").arg(tmp).arg(&u.key),
                        ask,
                    );
                }
            }
        }
        for group in groups.chunks(units, GROUP_KEYS, |u| u.body.len()) {
            p.group(units, &group, db);
        }
        p
    }

    /// `SELECT want` when the connection is in another database. Only databases the connection
    /// has selected before, with an answer, come here (see `node::confirm_dbs`): a refused
    /// `SELECT` in a pipeline would leave the commands after it in the previous database.
    fn select(&mut self, unit: u32, want: u64, db: &mut Option<u64>) {
        if let Some(cur) = db
            && *cur != want
        {
            let mut c = Command::new("SELECT");
            c.arg_uint(want);
            self.push(unit, Role::Control, &c, false);
            *cur = want;
        }
    }

    /// One `MSET`/`MSETNX` of the string units `group` (all of one database).
    fn group(&mut self, units: &[Unit], group: &[u32], db: &mut Option<u64>) {
        let first = &units[group[0] as usize];
        self.select(group[0], first.db, db);
        // Not `body.ends_with(NX)`: a value may end with those bytes.
        let nx = group_pair(first).is_some_and(|(_, nx)| nx);
        let name: &[u8] = if nx { b"MSETNX" } else { b"MSET" };
        let _ = write!(self.buf, "*{}\r\n${}\r\n", 1 + 2 * group.len(), name.len());
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b"\r\n");
        for &i in group {
            if let Some((kv, _)) = group_pair(&units[i as usize]) {
                self.buf.extend_from_slice(kv);
            }
        }
        self.answer_for(group, Role::Group(group.len() as u32));
    }

    /// One reply, of `role`, answers for all of `units`.
    fn answer_for(&mut self, units: &[u32], role: Role) {
        let from = self.members.len() as u32;
        self.members.extend_from_slice(units);
        self.plan.push((from, role));
    }

    fn push(&mut self, unit: u32, role: Role, c: &Command, ask: bool) {
        if ask {
            self.asking(unit);
        }
        // Writing into a Vec cannot fail.
        let _ = c.write_to(&mut self.buf);
        self.plan.push((unit, role));
    }

    fn asking(&mut self, unit: u32) {
        self.buf.extend_from_slice(b"*1\r\n$6\r\nASKING\r\n");
        self.plan.push((unit, Role::Control));
    }

    fn body(&mut self, unit: u32, u: &Unit, ask: bool) {
        if ask {
            for cmd in split_commands(&u.body) {
                self.asking(unit);
                self.buf.extend_from_slice(cmd);
                self.plan.push((unit, Role::Body));
            }
        } else {
            self.buf.extend_from_slice(&u.body);
            self.plan
                .extend(std::iter::repeat_n((unit, Role::Body), u.commands as usize));
        }
    }

    /// Reads the replies into one outcome per unit: a redirection anywhere wins (the unit is
    /// sent again as a whole), then an error, then "existed". Marks the units whose key this
    /// attempt made ([`Unit::landed`]).
    pub fn outcomes(&self, units: &mut [Unit], replies: &[Value]) -> (Vec<Outcome>, Replies) {
        let mut out = vec![Outcome::Acked; units.len()];
        let mut counts = Replies {
            replies: replies.len() as u64,
            ..Replies::default()
        };
        for (&(unit, role), reply) in self.plan.iter().zip(replies) {
            let error = matches!(reply, Value::ServerError(_));
            counts.errors += u64::from(error);
            if let Role::Group(n) | Role::Deletes(n) = role {
                if let (Role::Group(_), false, false) = (role, error, reply == &Value::Int(0)) {
                    for &m in &self.members[unit as usize..(unit + n) as usize] {
                        units[m as usize].landed = true;
                    }
                }
                let new = match reply {
                    Value::ServerError(e) => {
                        classify(e.code(), e.details().unwrap_or(""), &Form::Direct)
                    }
                    Value::Int(0) if matches!(role, Role::Group(_)) => Outcome::Grouped,
                    _ => continue,
                };
                counts.retried += u64::from(matches!(new, Outcome::Retry(_)));
                for &m in &self.members[unit as usize..(unit + n) as usize] {
                    let o = &mut out[m as usize];
                    if rank(&new) > rank(o) {
                        *o = new.clone();
                    }
                }
                continue;
            }
            let u = &mut units[unit as usize];
            u.landed |= match role {
                Role::RenameNx => reply == &Value::Int(1),
                Role::Rename => !error,
                Role::Body => {
                    matches!(u.form, Form::Set | Form::Restore)
                        && !u.resend
                        && !error
                        && reply != &Value::Nil
                }
                _ => false,
            };
            let o = &mut out[unit as usize];
            let new = match reply {
                Value::ServerError(e) => classify(
                    e.code(),
                    e.details().unwrap_or(""),
                    &units[unit as usize].form,
                ),
                Value::Int(0) if role == Role::RenameNx => Outcome::Exists,
                Value::Nil if units[unit as usize].form == Form::Set => Outcome::Exists,
                _ => continue,
            };
            counts.retried += u64::from(matches!(new, Outcome::Retry(_)));
            if rank(&new) > rank(o) {
                *o = new;
            }
        }
        (out, counts)
    }
}

fn rank(o: &Outcome) -> u8 {
    match o {
        Outcome::Acked => 0,
        Outcome::Exists => 1,
        Outcome::Failed(_) => 2,
        Outcome::Retry(_) | Outcome::Grouped => 3,
    }
}

pub(super) fn classify(code: &str, details: &str, form: &Form) -> Outcome {
    let addr = || details.split_whitespace().nth(1).unwrap_or("").to_string();
    match code {
        "MOVED" => Outcome::Retry(Redirect::Moved {
            slot: details
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            addr: addr(),
        }),
        "ASK" => Outcome::Retry(Redirect::Ask { addr: addr() }),
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "READONLY" | "MASTERDOWN" | "BUSY" => {
            Outcome::Retry(Redirect::Wait(format!("{code} {details}")))
        }
        "BUSYKEY" if *form == Form::Restore => Outcome::Exists,
        _ if *form == Form::Function && details.contains("already exists") => Outcome::Exists,
        _ => Outcome::Failed(format!("{code} {details}").trim_end().to_string()),
    }
}

const NX: &[u8] = b"$2\r\nNX\r\n";

/// For a string unit that may join an `MSET`/`MSETNX`: its key and value as encoded in its
/// `SET key value [NX]` (no TTL), and whether it has `NX`. The body is ours (see
/// `Replay::set_body`), so its shape is known: the argument count tells which it is.
fn group_pair(u: &Unit) -> Option<(&[u8], bool)> {
    const SET3: &[u8] = b"*3\r\n$3\r\nSET\r\n";
    const SET4: &[u8] = b"*4\r\n$3\r\nSET\r\n";
    if u.form != Form::Set || u.resend || u.alone || u.ask.is_some() {
        return None;
    }
    let b = &u.body[..];
    if let Some(kv) = b.strip_prefix(SET3) {
        Some((kv, false))
    } else {
        let kv = b.strip_prefix(SET4)?.strip_suffix(NX)?;
        Some((kv, true))
    }
}

/// The string units of a batch that go into `MSET`/`MSETNX` commands.
#[derive(Default)]
struct Groups {
    /// Indices of grouped units, by (database, NX), in batch order.
    by_db: Vec<((u64, bool), Vec<u32>)>,
    grouped: Vec<bool>,
}

fn same_key(a: &Unit, b: &Unit) -> bool {
    a.db == b.db && a.slot == b.slot && a.key == b.key
}

/// Keys a `DEL` of a batch removes: units sent with replace semantics.
fn needs_del(u: &Unit) -> bool {
    u.ask.is_none()
        && match u.form {
            Form::Direct => true,
            Form::Restore | Form::Set => u.resend,
            _ => false,
        }
}

/// Most keys one `DEL` of a batch names.
const DELETE_KEYS: usize = 512;

impl Groups {
    /// The units `select` picks (with a flag that splits them further), by database; with
    /// `distinct`, only the first unit of a key (a repeat keeps its own place in the batch).
    fn of(
        units: &[Unit],
        select: impl Fn(&Unit) -> Option<(&[u8], bool)>,
        distinct: bool,
    ) -> Groups {
        let mut g = Groups::default();
        for (i, u) in units.iter().enumerate() {
            let Some((_, nx)) = select(u) else {
                continue;
            };
            let at = match g.by_db.iter().position(|(k, _)| *k == (u.db, nx)) {
                Some(at) => at,
                None => {
                    g.by_db.push(((u.db, nx), Vec::new()));
                    g.by_db.len() - 1
                }
            };
            let group = &mut g.by_db[at].1;
            if distinct && group.iter().any(|&j| same_key(&units[j as usize], u)) {
                continue;
            }
            group.push(i as u32);
        }
        // A lone unit is cheaper as it is.
        g.by_db.retain(|(_, v)| v.len() > 1);
        g.grouped = vec![false; units.len()];
        for (_, v) in &g.by_db {
            for &i in v {
                g.grouped[i as usize] = true;
            }
        }
        g
    }

    fn has(&self, unit: usize) -> bool {
        self.grouped.get(unit).copied().unwrap_or(false)
    }

    /// The groups, each at most `keys` keys and about [`GROUP_BYTES`] (as `size` counts), and
    /// never the same key twice (an MSETNX would let the second overwrite the first instead of
    /// being refused).
    fn chunks(&self, units: &[Unit], keys: usize, size: impl Fn(&Unit) -> usize) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        for (_, members) in &self.by_db {
            let mut cur: Vec<u32> = Vec::new();
            let mut bytes = 0;
            for &i in members {
                let u = &units[i as usize];
                let repeat = cur.iter().any(|&j| same_key(&units[j as usize], u));
                if cur.len() == keys || bytes >= GROUP_BYTES || repeat {
                    out.push(std::mem::take(&mut cur));
                    bytes = 0;
                }
                bytes += size(u);
                cur.push(i);
            }
            out.push(cur);
        }
        out
    }
}

/// The commands of a RESP stream our own encoder wrote (well-formed by construction).
fn split_commands(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut args = Vec::new();
    while !buf.is_empty() {
        let len = parse::command(buf, &mut args).unwrap_or(buf.len());
        out.push(&buf[..len]);
        buf = &buf[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(form: Form, resend: bool, ask: bool) -> Unit {
        let mut body = Vec::new();
        let mut c = Command::new("RPUSH");
        c.arg(b"t").arg(b"a");
        c.write_to(&mut body).unwrap();
        c.write_to(&mut body).unwrap();
        Unit {
            commands: 2,
            resend,
            ask: ask.then_some(1),
            ..Unit::new(0, 0, b"k".to_vec(), 0, form, body)
        }
    }

    #[test]
    fn plans_follow_the_form() {
        let staged = Form::Staged { tmp: b"t".to_vec() };
        let cases = [
            (Form::Restore, false, false, 2),
            (Form::Direct, false, false, 3),
            (staged.clone(), false, false, 3),
            (staged.clone(), true, false, 4),
            (staged, false, true, 6),
        ];
        for (form, resend, ask, replies) in cases {
            let units = [unit(form.clone(), resend, ask)];
            let p = Packed::new(&units, &mut Some(0));
            assert_eq!(p.replies(), replies, "{form:?} {resend} {ask}");
            assert_eq!(
                split_commands(&p.buf).len(),
                replies,
                "{:?}",
                String::from_utf8_lossy(&p.buf)
            );
        }
        let units = [unit(Form::Direct, false, false)];
        assert_eq!(Packed::new(&units, &mut Some(3)).replies(), 4, "SELECT");
    }

    fn string(key: &str, db: u64, args: &[&str]) -> Unit {
        let mut c = Command::new("SET");
        c.arg(key.as_bytes()).arg(b"v");
        for a in args {
            c.arg(a.as_bytes());
        }
        let mut u = unit(Form::Set, false, false);
        u.body.clear();
        c.write_to(&mut u.body).unwrap();
        u.commands = 1;
        (u.key, u.db) = (key.as_bytes().to_vec(), db);
        u
    }

    #[test]
    fn strings_without_ttl_share_one_msetnx_per_database() {
        let mut units = vec![
            string("a", 0, &["NX"]),
            string("ttl", 0, &["NX", "PXAT", "5"]),
            unit(Form::Staged { tmp: b"t".to_vec() }, false, false),
            string("b", 1, &["NX"]),
            string("c", 0, &["NX"]),
            string("d", 1, &["NX"]),
            string("a", 0, &["NX"]),
        ];
        let p = Packed::new(&units, &mut Some(0));
        let cmds: Vec<String> = split_commands(&p.buf)
            .iter()
            .map(|c| String::from_utf8_lossy(c).replace("\r\n", " "))
            .collect();
        assert_eq!(
            cmds,
            [
                "*6 $3 SET $3 ttl $1 v $2 NX $4 PXAT $1 5 ",
                "*3 $5 RPUSH $1 t $1 a ",
                "*3 $5 RPUSH $1 t $1 a ",
                "*3 $8 RENAMENX $1 t $1 k ",
                // A key never appears twice in one group.
                "*5 $6 MSETNX $1 a $1 v $1 c $1 v ",
                "*3 $6 MSETNX $1 a $1 v ",
                "*2 $6 SELECT $1 1 ",
                "*5 $6 MSETNX $1 b $1 v $1 d $1 v ",
            ]
        );
        assert_eq!(p.replies(), cmds.len());
        let replies = [
            Value::Okay,
            Value::Int(2),
            Value::Int(2),
            Value::Int(1),
            Value::Int(0),
            Value::Int(1),
            Value::Okay,
            redis::parse_redis_value(b"-OOM command not allowed\r\n").unwrap(),
        ];
        let (out, counts) = p.outcomes(&mut units, &replies);
        assert_eq!(counts.errors, 1);
        // Made by this batch: the SET with a TTL, the renamed list and the lone `a` of the
        // second group.
        let landed: Vec<bool> = units.iter().map(|u| u.landed).collect();
        assert_eq!(landed, [false, true, true, false, false, false, true]);
        assert_eq!(out[0], Outcome::Grouped, "a: its group was refused");
        assert_eq!(out[4], Outcome::Grouped);
        assert_eq!(out[6], Outcome::Acked);
        assert!(matches!(out[3], Outcome::Failed(_)), "{:?}", out[3]);
        assert_eq!(out[1], Outcome::Acked);
        // Sent again alone after a refusal, a string is its own SET NX; in a cluster, always.
        units[0].alone = true;
        assert_eq!(Packed::new(&units[..1], &mut Some(0)).buf, units[0].body);
        assert_eq!(Packed::new(&units[2..], &mut None).replies(), 7);
    }

    #[test]
    fn replace_semantics_delete_a_batch_of_keys_in_one_del() {
        let mut units = vec![
            unit(Form::Direct, false, false),
            unit(Form::Restore, true, false),
            unit(Form::Direct, false, false),
            unit(Form::Restore, false, false),
        ];
        units[1].key = b"r".to_vec();
        // The same key again keeps its own DEL, between the first one's commands and its own.
        let p = Packed::new(&units, &mut Some(0));
        let cmds: Vec<String> = split_commands(&p.buf)
            .iter()
            .map(|c| String::from_utf8_lossy(c).replace("\r\n", " "))
            .collect();
        assert_eq!(cmds[0], "*3 $3 DEL $1 k $1 r ");
        assert_eq!(cmds[5], "*2 $3 DEL $1 k ", "{cmds:?}");
        assert_eq!(p.replies(), 1 + 2 + 2 + 1 + 2 + 2);
        let mut replies = vec![Value::Int(1); p.replies()];
        replies[0] = redis::parse_redis_value(b"-READONLY You can't write\r\n").unwrap();
        let (out, _) = p.outcomes(&mut units, &replies);
        assert!(
            matches!(out[0], Outcome::Retry(Redirect::Wait(_))),
            "{out:?}"
        );
        assert!(matches!(out[1], Outcome::Retry(Redirect::Wait(_))));
        assert_eq!(out[2..], [Outcome::Acked, Outcome::Acked]);
    }

    #[test]
    fn renamenx_zero_means_the_key_existed() {
        let mut units = [unit(Form::Staged { tmp: b"t".to_vec() }, false, false)];
        let p = Packed::new(&units, &mut None);
        let ok = Value::Okay;
        let replies = [Value::Int(1), Value::Int(2), Value::Int(0)];
        assert_eq!(p.outcomes(&mut units, &replies).0, [Outcome::Exists]);
        assert!(!units[0].landed);
        let replies = [Value::Int(1), ok, Value::Int(1)];
        assert_eq!(p.outcomes(&mut units, &replies).0, [Outcome::Acked]);
        assert!(units[0].landed);
        // Sent again without replace semantics, its value is built afresh and still only
        // renamed into a free name.
        units[0].again = true;
        let cmds: Vec<String> = split_commands(&Packed::new(&units, &mut None).buf)
            .iter()
            .map(|c| String::from_utf8_lossy(c).replace("\r\n", " "))
            .collect();
        assert_eq!(cmds[0], "*2 $3 DEL $1 t ");
        assert_eq!(cmds[cmds.len() - 1], "*3 $8 RENAMENX $1 t $1 k ");
        assert_eq!(
            classify("MOVED", "3 127.0.0.1:7001", &Form::Direct),
            Outcome::Retry(Redirect::Moved {
                slot: 3,
                addr: "127.0.0.1:7001".into()
            })
        );
        assert_eq!(
            classify("BUSYKEY", "exists", &Form::Restore),
            Outcome::Exists
        );
        assert!(matches!(
            classify("WRONGTYPE", "x", &Form::Raw),
            Outcome::Failed(_)
        ));
    }
}
