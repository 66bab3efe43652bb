//! A unit of work: everything that writes one key (or one AOF command), sent and acknowledged
//! as a whole, and sent again as a whole when it has to be retried (with replace semantics
//! when its key may hold what an earlier attempt wrote).

use std::time::Instant;

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
/// Which of two outcomes of one unit wins: a redirection (the unit is sent again as a whole),
/// then an error, then "existed".
pub(super) fn rank(o: &Outcome) -> u8 {
    match o {
        Outcome::Acked => 0,
        Outcome::Exists => 1,
        Outcome::Failed(_) => 2,
        Outcome::Retry(_) | Outcome::Grouped => 3,
    }
}

/// The outcome of an error reply `code details` to a command of a unit of `form`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_say_whether_to_send_again_and_where() {
        let moved = classify("MOVED", "3999 127.0.0.1:7002", &Form::Set);
        let addr = "127.0.0.1:7002".to_string();
        assert_eq!(
            moved,
            Outcome::Retry(Redirect::Moved {
                slot: 3999,
                addr: addr.clone()
            })
        );
        let ask = classify("ASK", "3999 127.0.0.1:7002", &Form::Set);
        assert_eq!(ask, Outcome::Retry(Redirect::Ask { addr }));
        for code in [
            "LOADING",
            "BUSY",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "READONLY",
            "MASTERDOWN",
        ] {
            let wait = format!("{code} not now");
            let got = classify(code, "not now", &Form::Direct);
            assert_eq!(got, Outcome::Retry(Redirect::Wait(wait)), "{code}");
        }
        // BUSYKEY means "existed" only for a RESTORE; elsewhere an error is a failure, as sent.
        assert_eq!(classify("BUSYKEY", "x", &Form::Restore), Outcome::Exists);
        assert_eq!(
            classify("BUSYKEY", "x", &Form::Direct),
            Outcome::Failed("BUSYKEY x".into())
        );
        let lib = "Library 'l' already exists";
        assert_eq!(classify("ERR", lib, &Form::Function), Outcome::Exists);
        assert_eq!(
            classify("ERR", "", &Form::Raw),
            Outcome::Failed("ERR".into())
        );
    }

    #[test]
    fn a_redirection_outranks_an_error_which_outranks_existing() {
        let order = [
            Outcome::Acked,
            Outcome::Exists,
            Outcome::Failed("ERR".into()),
            Outcome::Retry(Redirect::Lost("gone".into())),
        ];
        assert!(order.windows(2).all(|w| rank(&w[0]) < rank(&w[1])));
        assert_eq!(rank(&Outcome::Grouped), rank(&order[3]));
    }
}
