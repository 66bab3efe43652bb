//! The commands of a batch of units sent in one go (with the `SELECT`s, `ASKING`s, `DEL`s and
//! `MSETNX` groups around the units' own), and the batch's replies read back into one outcome
//! per unit.

use std::io::Write;

use redis::Value;

use super::groups::{DELETE_KEYS, GROUP_KEYS, Groups, group_pair, needs_del};
use super::unit::{Form, Outcome, Unit, classify, rank};
use crate::resp::{Command, parse};

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
    use crate::replay::unit::Redirect;

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

    fn reply(resp: &[u8]) -> Value {
        redis::parse_redis_value(resp).unwrap()
    }

    /// One RESTORE unit, sent alone, and what each reply makes of it.
    #[test]
    fn each_reply_to_a_restore_becomes_its_outcome() {
        let wait = |s: &str| Outcome::Retry(Redirect::Wait(s.into()));
        let cases = [
            (reply(b"+OK\r\n"), Outcome::Acked, true),
            (
                reply(b"-ERR bad payload\r\n"),
                Outcome::Failed("ERR bad payload".into()),
                false,
            ),
            (
                reply(b"-BUSYKEY Target key name already exists.\r\n"),
                Outcome::Exists,
                false,
            ),
            (
                reply(b"-LOADING loading the dataset\r\n"),
                wait("LOADING loading the dataset"),
                false,
            ),
            (
                reply(b"-BUSY script running\r\n"),
                wait("BUSY script running"),
                false,
            ),
            (
                reply(b"-MOVED 12 10.0.0.2:6380\r\n"),
                Outcome::Retry(Redirect::Moved {
                    slot: 12,
                    addr: "10.0.0.2:6380".into(),
                }),
                false,
            ),
            (
                reply(b"-ASK 12 10.0.0.2:6380\r\n"),
                Outcome::Retry(Redirect::Ask {
                    addr: "10.0.0.2:6380".into(),
                }),
                false,
            ),
        ];
        for (answer, want, landed) in cases {
            let mut units = [Unit::new(
                0,
                0,
                b"k".to_vec(),
                12,
                Form::Restore,
                b"RESTORE".to_vec(),
            )];
            let p = Packed::new(&units, &mut None);
            assert_eq!(
                p.buf, b"RESTORE",
                "the unit's own commands, nothing around them"
            );
            let (out, counts) = p.outcomes(&mut units, std::slice::from_ref(&answer));
            assert_eq!(out, std::slice::from_ref(&want), "{answer:?}");
            assert_eq!(units[0].landed, landed, "{answer:?}");
            let error = !matches!(want, Outcome::Acked);
            let retried = matches!(want, Outcome::Retry(_));
            let want_counts = Replies {
                replies: 1,
                errors: u64::from(error),
                retried: u64::from(retried),
            };
            assert_eq!(counts, want_counts, "{answer:?}");
        }
    }

    /// Sent after an ASK redirection, each command of the unit follows its own `ASKING`, whose
    /// `OK` is not the unit's answer.
    #[test]
    fn an_asked_unit_is_sent_with_asking_and_answered_by_its_own_replies() {
        let mut units = [unit(Form::Restore, false, true)];
        let p = Packed::new(&units, &mut None);
        let cmds: Vec<String> = split_commands(&p.buf)
            .iter()
            .map(|c| String::from_utf8_lossy(c).replace("\r\n", " "))
            .collect();
        let rpush = "*3 $5 RPUSH $1 t $1 a ";
        assert_eq!(cmds, ["*1 $6 ASKING ", rpush, "*1 $6 ASKING ", rpush]);
        let ok = Value::Okay;
        let replies = [ok.clone(), Value::Int(1), ok, reply(b"-TRYAGAIN\r\n")];
        let (out, counts) = p.outcomes(&mut units, &replies);
        assert_eq!(out, [Outcome::Retry(Redirect::Wait("TRYAGAIN ".into()))]);
        assert_eq!((counts.errors, counts.retried), (1, 1));
    }
}
