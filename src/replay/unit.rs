//! A unit of work: everything that writes one key (or one AOF command), sent and acknowledged
//! as a whole, and sent again as a whole (with replace semantics) when it has to be retried.

use std::time::Instant;

use redis::Value;

use crate::resp::Command;

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
    /// Sent before without an answer, or redirected: send with replace semantics.
    pub resend: bool,
    /// `ASK` redirection: the node (index) to send to, each command after `ASKING`.
    pub ask: Option<usize>,
    /// Goes to this node whatever its slot (function libraries go to every master).
    pub pinned: Option<usize>,
    /// When the unit first failed to get an answer (for the retry deadline).
    pub failing_since: Option<Instant>,
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

/// Replies read for a batch, and how many were errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replies {
    pub replies: u64,
    pub errors: u64,
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
}

/// Commands for a batch of units, and which reply belongs to which unit.
#[derive(Default)]
pub struct Packed {
    pub buf: Vec<u8>,
    plan: Vec<(u32, Role)>,
}

impl Packed {
    pub fn replies(&self) -> usize {
        self.plan.len()
    }

    /// Encodes `units`; `db` is the connection's selected database (`None` in a cluster, which
    /// has only database 0).
    pub fn new(units: &[Unit], db: &mut Option<u64>) -> Packed {
        // Room for the bodies and what goes around them (SELECT, DEL, RENAMENX, ASKING).
        let room: usize = units
            .iter()
            .map(|u| u.body.len() + 2 * u.key.len() + 96)
            .sum();
        let mut p = Packed {
            buf: Vec::with_capacity(room),
            plan: Vec::with_capacity(units.len() * 2),
        };
        for (i, u) in units.iter().enumerate() {
            let i = i as u32;
            if let Some(cur) = db
                && *cur != u.db
            {
                let mut c = Command::new("SELECT");
                c.arg_uint(u.db);
                p.push(i, Role::Control, &c, false);
                *cur = u.db;
            }
            let ask = u.ask.is_some();
            match (&u.form, u.resend) {
                (Form::Restore | Form::Set, false)
                | (Form::Raw | Form::Function | Form::Cleanup, _) => p.body(i, u, ask),
                (Form::Restore | Form::Set, true) | (Form::Direct, _) => {
                    p.push(i, Role::Body, Command::new("DEL").arg(&u.key), ask);
                    p.body(i, u, ask);
                }
                (Form::Staged { tmp }, false) => {
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
                        Role::Body,
                        Command::new("RENAME").arg(tmp).arg(&u.key),
                        ask,
                    );
                }
            }
        }
        p
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
    /// sent again as a whole), then an error, then "existed".
    pub fn outcomes(&self, units: &[Unit], replies: &[Value]) -> (Vec<Outcome>, Replies) {
        let mut out = vec![Outcome::Acked; units.len()];
        let mut counts = Replies {
            replies: replies.len() as u64,
            errors: 0,
        };
        for (&(unit, role), reply) in self.plan.iter().zip(replies) {
            let o = &mut out[unit as usize];
            counts.errors += u64::from(matches!(reply, Value::ServerError(_)));
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
        Outcome::Retry(_) => 3,
    }
}

fn classify(code: &str, details: &str, form: &Form) -> Outcome {
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

/// The commands of a RESP stream our own encoder wrote (well-formed by construction).
fn split_commands(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = command_len(buf).unwrap_or(buf.len());
        out.push(&buf[..len]);
        buf = &buf[len..];
    }
    out
}

/// Length of the RESP array at the start of `buf`, if it is complete.
pub fn command_len(buf: &[u8]) -> Option<usize> {
    let (n, mut pos) = header(buf, 0, b'*')?;
    for _ in 0..n {
        let (len, start) = header(buf, pos, b'$')?;
        pos = start.checked_add(len as usize)?.checked_add(2)?;
        if pos > buf.len() {
            return None;
        }
    }
    Some(pos)
}

/// `<tag><digits>\r\n` at `pos`: the number and where what follows starts.
pub fn header(buf: &[u8], pos: usize, tag: u8) -> Option<(u64, usize)> {
    if buf.get(pos) != Some(&tag) {
        return None;
    }
    let line = buf.get(pos + 1..)?;
    let end = memchr::memchr(b'\r', line)?;
    if line.get(end + 1) != Some(&b'\n') {
        return None;
    }
    let n = std::str::from_utf8(&line[..end]).ok()?.parse().ok()?;
    Some((n, pos + 1 + end + 2))
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
            seq: 0,
            db: 0,
            key: b"k".to_vec(),
            slot: 0,
            body,
            commands: 2,
            form,
            resend,
            ask: ask.then_some(1),
            pinned: None,
            failing_since: None,
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

    #[test]
    fn renamenx_zero_means_the_key_existed() {
        let units = [unit(Form::Staged { tmp: b"t".to_vec() }, false, false)];
        let p = Packed::new(&units, &mut None);
        let ok = Value::Okay;
        let replies = [Value::Int(1), Value::Int(2), Value::Int(0)];
        assert_eq!(p.outcomes(&units, &replies).0, [Outcome::Exists]);
        let replies = [Value::Int(1), ok, Value::Int(1)];
        assert_eq!(p.outcomes(&units, &replies).0, [Outcome::Acked]);
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
