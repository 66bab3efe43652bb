//! The master's decision on `PSYNC <replid> <offset>`, as Redis (`syncCommand` and
//! `masterTryPartialResynchronization` in `replication.c`, 4.0 to 8.x) and Valkey
//! (`primaryTryPartialResynchronization`) make it, from the fields of `INFO replication`.
//!
//! In the order the server checks them:
//! 1. A server that is itself a replica refuses any PSYNC (`-NOMASTERLINK`, the replica tries
//!    again later) while the link with its own master is down, and so does one in the middle
//!    of a `FAILOVER`. A replica whose link is up answers like a master: its replid is its
//!    master's, its backlog holds the stream it passed on.
//! 2. The replid: `?` forces a full resync; the master's own replid is good at any offset; its
//!    secondary id (`master_replid2`, the replid before the last promotion: psync2) only up to
//!    `second_repl_offset`; any other replid means another history. Compared without case.
//! 3. The backlog: it must exist, and hold the offset asked: `first_byte_offset <= offset <=
//!    first_byte_offset + histlen`. The last value means "nothing missing": `+CONTINUE` with no
//!    bytes. Then the master sends `first_byte_offset + histlen - offset` bytes.
//!
//! Offsets: byte k of the stream has offset k; a replica that has processed up to X (its
//! `master_repl_offset`) asks `PSYNC <replid> X+1`.

use std::collections::BTreeMap;

/// The `field:value` lines of a saved `INFO` output (any sections; `#` headings and blank lines
/// skipped, `\r\n` or `\n` line ends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    fields: BTreeMap<String, String>,
}

impl Info {
    pub fn parse(text: &str) -> Info {
        let fields = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Info { fields }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Sets (or replaces) a field: a value given on the command line wins over the file's.
    pub fn set(&mut self, field: &str, value: &str) {
        self.fields.insert(field.to_string(), value.to_string());
    }

    fn text(&self, field: &'static str) -> Result<&str, FieldError> {
        self.get(field).ok_or(FieldError::Missing { field })
    }

    fn number(&self, field: &'static str) -> Result<i64, FieldError> {
        let value = self.text(field)?;
        value.parse().map_err(|_| FieldError::Bad {
            field,
            value: value.to_string(),
            expected: "an integer",
        })
    }
}

/// A field the decision needs is absent, or not what the server writes there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("no {field} field")]
    Missing { field: &'static str },
    #[error("{field} is {value:?}, not {expected}")]
    Bad {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// What the master's decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub replid: String,
    pub replid2: String,
    pub repl_offset: i64,
    pub second_repl_offset: i64,
    /// None when `repl_backlog_active:0`.
    pub backlog: Option<Backlog>,
    /// `repl_backlog_size`, shown only: the server decides by what the backlog holds.
    pub backlog_size: Option<i64>,
    /// Why this server refuses any PSYNC now, if it does (from `role`, `master_link_status`,
    /// `master_failover_state`; a server without these fields is taken as a master).
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub first_byte_offset: i64,
    pub histlen: i64,
}

impl Backlog {
    /// The offset just past the last byte held: a replica asking for it is missing nothing.
    pub fn end(&self) -> i128 {
        self.first_byte_offset as i128 + self.histlen as i128
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A replica whose link with its own master is down.
    NoMasterLink,
    /// `master_failover_state` other than `no-failover`.
    FailingOver,
}

impl Master {
    /// The master's state from its `INFO replication` fields.
    pub fn from_info(info: &Info) -> Result<Master, FieldError> {
        let active = match info.text("repl_backlog_active")? {
            "1" => true,
            "0" => false,
            other => {
                return Err(FieldError::Bad {
                    field: "repl_backlog_active",
                    value: other.to_string(),
                    expected: "0 or 1",
                });
            }
        };
        let backlog = match active {
            true => Some(Backlog {
                first_byte_offset: info.number("repl_backlog_first_byte_offset")?,
                histlen: info.number("repl_backlog_histlen")?,
            }),
            false => None,
        };
        let refusal = if info.get("role").is_some_and(|r| r != "master")
            && info.get("master_link_status") != Some("up")
        {
            Some(Refusal::NoMasterLink)
        } else if info
            .get("master_failover_state")
            .is_some_and(|s| s != "no-failover")
        {
            Some(Refusal::FailingOver)
        } else {
            None
        };
        Ok(Master {
            replid: info.text("master_replid")?.to_string(),
            replid2: info.text("master_replid2")?.to_string(),
            repl_offset: info.number("master_repl_offset")?,
            second_repl_offset: info.number("second_repl_offset")?,
            backlog,
            backlog_size: info.get("repl_backlog_size").and_then(|s| s.parse().ok()),
            refusal,
        })
    }
}

/// What a replica sends: `PSYNC <replid> <offset>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub replid: String,
    pub offset: i64,
}

impl Request {
    /// The request of a replica with this `INFO replication`: the replid it follows
    /// (`master_replid`) and the byte after the last it processed (`master_repl_offset` + 1).
    pub fn from_replica_info(info: &Info) -> Result<Request, FieldError> {
        let processed = info.number("master_repl_offset")?;
        Ok(Request {
            replid: info.text("master_replid")?.to_string(),
            offset: processed.saturating_add(1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `+CONTINUE`, then this many bytes of backlog.
    Continue { bytes: i64 },
    /// `+FULLRESYNC`: a new snapshot.
    FullResync,
    /// `-NOMASTERLINK`: no answer now; the replica tries again later.
    Refused,
}

/// The check that decided, in the server's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    NoMasterLink,
    FailingOver,
    Forced,
    UnknownReplid,
    SecondIdPastOffset,
    NoBacklog,
    BeforeBacklog,
    AfterBacklog,
    MainId,
    SecondId,
}

impl Rule {
    /// A stable name for machine output.
    pub fn id(self) -> &'static str {
        match self {
            Rule::NoMasterLink => "no_master_link",
            Rule::FailingOver => "failing_over",
            Rule::Forced => "forced_full",
            Rule::UnknownReplid => "unknown_replid",
            Rule::SecondIdPastOffset => "second_id_past_offset",
            Rule::NoBacklog => "no_backlog",
            Rule::BeforeBacklog => "before_backlog",
            Rule::AfterBacklog => "after_backlog",
            Rule::MainId => "main_id",
            Rule::SecondId => "second_id",
        }
    }
}

/// The answer, the rule that decided it, and why in words and numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    pub rule: Rule,
    /// The rule in words.
    pub reason: String,
    /// The comparison (or sum) that decided, with the numbers.
    pub arithmetic: String,
}

/// The master's answer to `request`, as the server decides it.
pub fn decide(master: &Master, request: &Request) -> Decision {
    if let Some(refusal) = master.refusal {
        return refused(refusal);
    }
    let offset = request.offset;
    let main = request.replid.eq_ignore_ascii_case(&master.replid);
    let second = !main && request.replid.eq_ignore_ascii_case(&master.replid2);
    if !main && let Some(d) = replid_failure(master, request, second) {
        return d;
    }
    let Some(backlog) = master.backlog else {
        return full(
            Rule::NoBacklog,
            "the master has no backlog (repl_backlog_active:0)".into(),
            "repl_backlog_active = 0".into(),
        );
    };
    let (first, end) = (backlog.first_byte_offset, backlog.end());
    if offset < first {
        return full(
            Rule::BeforeBacklog,
            "the offset asked has already left the backlog".into(),
            format!("offset {offset} < repl_backlog_first_byte_offset {first}"),
        );
    }
    if offset as i128 > end {
        let beyond = match offset > master.repl_offset {
            true => " (and past master_repl_offset: the server logs a warning)",
            false => "",
        };
        return full(
            Rule::AfterBacklog,
            format!("the offset asked is past the end of the backlog{beyond}"),
            format!(
                "offset {offset} > repl_backlog_first_byte_offset {first} + repl_backlog_histlen {} = {end}",
                backlog.histlen
            ),
        );
    }
    let bytes = (end - offset as i128) as i64;
    let (rule, by) = match second {
        true => (
            Rule::SecondId,
            format!(
                "the replid is the master's secondary id (master_replid2) and offset {offset} <= second_repl_offset {}",
                master.second_repl_offset
            ),
        ),
        false => (Rule::MainId, "the replid is the master's".to_string()),
    };
    Decision {
        answer: Answer::Continue { bytes },
        rule,
        reason: format!("{by}, and the backlog holds offset {offset}"),
        arithmetic: format!(
            "{first} <= {offset} <= {end}; bytes sent = repl_backlog_first_byte_offset {first} + repl_backlog_histlen {} - offset {offset} = {bytes}",
            backlog.histlen
        ),
    }
}

/// The replid check for a replid that is not the master's own: None if it passes (the
/// secondary id, at an offset it still covers).
fn replid_failure(master: &Master, request: &Request, second: bool) -> Option<Decision> {
    let (asked, offset) = (&request.replid, request.offset);
    let ids = format!(
        "master_replid {}, master_replid2 {}",
        master.replid, master.replid2
    );
    if asked.starts_with('?') {
        return Some(full(
            Rule::Forced,
            "the replica asks for a full resync (replid ?)".into(),
            format!("replid {asked}"),
        ));
    }
    if !second {
        return Some(full(
            Rule::UnknownReplid,
            "the replid is neither the master's nor its secondary id: another history".into(),
            format!("replid {asked} is not {ids}"),
        ));
    }
    let limit = master.second_repl_offset;
    (offset > limit).then(|| {
        full(
            Rule::SecondIdPastOffset,
            "the replid is the master's secondary id, valid only up to second_repl_offset".into(),
            format!("offset {offset} > second_repl_offset {limit}"),
        )
    })
}

fn full(rule: Rule, reason: String, arithmetic: String) -> Decision {
    Decision {
        answer: Answer::FullResync,
        rule,
        reason,
        arithmetic,
    }
}

fn refused(refusal: Refusal) -> Decision {
    let (rule, reason, arithmetic) = match refusal {
        Refusal::NoMasterLink => (
            Rule::NoMasterLink,
            "the server is a replica whose link with its own master is down: it refuses any PSYNC until it is up",
            "role != master, master_link_status != up",
        ),
        Refusal::FailingOver => (
            Rule::FailingOver,
            "the server is failing over: it refuses any PSYNC until that ends",
            "master_failover_state != no-failover",
        ),
    };
    Decision {
        answer: Answer::Refused,
        rule,
        reason: reason.into(),
        arithmetic: arithmetic.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "8c9c5a0b1e5e0a7f1d4c3b2a190807060504030a";
    const B: &str = "1111111111111111111111111111111111111111";
    const NONE: &str = "0000000000000000000000000000000000000000";

    /// A master whose backlog holds bytes 1001..=17384 (16 KiB), offset 17384.
    fn master() -> Master {
        Master {
            replid: A.into(),
            replid2: NONE.into(),
            repl_offset: 17384,
            second_repl_offset: -1,
            backlog: Some(Backlog {
                first_byte_offset: 1001,
                histlen: 16384,
            }),
            backlog_size: Some(16384),
            refusal: None,
        }
    }

    fn ask(replid: &str, offset: i64) -> Request {
        Request {
            replid: replid.into(),
            offset,
        }
    }

    #[test]
    fn inside_the_backlog_continues_with_the_missing_bytes() {
        let d = decide(&master(), &ask(A, 17000));
        assert_eq!(d.answer, Answer::Continue { bytes: 385 });
        assert_eq!(d.rule, Rule::MainId);
        assert!(
            d.arithmetic
                .contains("1001 + repl_backlog_histlen 16384 - offset 17000 = 385")
        );
        // Its first byte, and the replid in other case (the server compares without case).
        let d = decide(&master(), &ask(&A.to_uppercase(), 1001));
        assert_eq!(d.answer, Answer::Continue { bytes: 16384 });
    }

    #[test]
    fn the_end_of_the_backlog_continues_with_nothing() {
        let d = decide(&master(), &ask(A, 17385));
        assert_eq!(d.answer, Answer::Continue { bytes: 0 });
        let d = decide(&master(), &ask(A, 17386));
        assert_eq!((d.answer, d.rule), (Answer::FullResync, Rule::AfterBacklog));
        assert!(d.reason.contains("past master_repl_offset"), "{d:?}");
        assert!(
            d.arithmetic
                .contains("17386 > repl_backlog_first_byte_offset 1001")
        );
    }

    #[test]
    fn before_the_backlog_is_a_full_resync() {
        let d = decide(&master(), &ask(A, 1000));
        assert_eq!(
            (d.answer, d.rule),
            (Answer::FullResync, Rule::BeforeBacklog)
        );
        assert_eq!(
            d.arithmetic,
            "offset 1000 < repl_backlog_first_byte_offset 1001"
        );
    }

    #[test]
    fn replids_forced_unknown_and_secondary() {
        let d = decide(&master(), &ask("?", -1));
        assert_eq!((d.answer, d.rule), (Answer::FullResync, Rule::Forced));
        let d = decide(&master(), &ask(B, 17000));
        assert_eq!(
            (d.answer, d.rule),
            (Answer::FullResync, Rule::UnknownReplid)
        );
        let promoted = Master {
            replid: B.into(),
            replid2: A.into(),
            second_repl_offset: 17000,
            ..master()
        };
        let d = decide(&promoted, &ask(A, 17000));
        assert_eq!(
            (d.answer, d.rule),
            (Answer::Continue { bytes: 385 }, Rule::SecondId)
        );
        let d = decide(&promoted, &ask(A, 17001));
        assert_eq!(
            (d.answer, d.rule),
            (Answer::FullResync, Rule::SecondIdPastOffset)
        );
        // The all-zero replid2 of a server never promoted matches nothing reachable.
        let d = decide(&master(), &ask(NONE, 17000));
        assert_eq!(d.rule, Rule::SecondIdPastOffset);
    }

    #[test]
    fn no_backlog_and_refusals() {
        let none = Master {
            backlog: None,
            ..master()
        };
        assert_eq!(decide(&none, &ask(A, 17385)).rule, Rule::NoBacklog);
        let down = Master {
            refusal: Some(Refusal::NoMasterLink),
            ..master()
        };
        assert_eq!(decide(&down, &ask(A, 17000)).answer, Answer::Refused);
    }

    #[test]
    fn info_text_is_read_and_requests_ask_the_next_byte() {
        let text = format!(
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_replid:{A}\r\n\
             master_replid2:{NONE}\r\nmaster_repl_offset:17384\r\nsecond_repl_offset:-1\r\n\
             repl_backlog_active:1\r\nrepl_backlog_size:16384\r\n\
             repl_backlog_first_byte_offset:1001\r\nrepl_backlog_histlen:16384\r\n"
        );
        let info = Info::parse(&text);
        assert_eq!(Master::from_info(&info), Ok(master()));
        let request = Request::from_replica_info(&info).unwrap();
        assert_eq!(request, ask(A, 17385));
        let mut down = info.clone();
        down.set("master_link_status", "down");
        let refusal = Master::from_info(&down).unwrap().refusal;
        assert_eq!(refusal, Some(Refusal::NoMasterLink));
        let mut missing = Info::parse(&text.replace("second_repl_offset", "x"));
        let field = "second_repl_offset";
        assert_eq!(
            Master::from_info(&missing),
            Err(FieldError::Missing { field })
        );
        missing.set("second_repl_offset", "abc");
        let e = Master::from_info(&missing).unwrap_err().to_string();
        assert_eq!(e, "second_repl_offset is \"abc\", not an integer");
    }
}
