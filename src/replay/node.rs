//! The target's nodes: the slot map of a cluster, and per node a few connections, each a thread
//! that sends batches of units and hands back what became of each.

use std::collections::{BTreeSet, VecDeque};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use redis::Value;

use super::batch::{Packed, Replies};
use super::endpoint::Endpoint;
use super::slots::SLOTS;
use super::unit::{Form, Outcome, Redirect, Unit, classify};

/// What a connection thread reports.
pub enum Event {
    /// A batch came back with one outcome per unit, and its reply and error reply counts.
    Done(Vec<Unit>, Vec<Outcome>, Replies),
}

pub struct Node {
    pub addr: String,
    pub tx: Sender<Vec<Unit>>,
}

impl Node {
    /// Starts `connections` threads sending to `endpoint`; batches queue up to two per thread.
    pub fn start(
        endpoint: &Endpoint,
        connections: usize,
        events: &Sender<Event>,
        cluster: bool,
    ) -> Node {
        let (tx, rx) = crossbeam_channel::bounded(connections * 2);
        for _ in 0..connections {
            let endpoint = endpoint.clone();
            let rx: Receiver<Vec<Unit>> = rx.clone();
            let events = events.clone();
            thread::spawn(move || connection(endpoint, rx, events, cluster));
        }
        Node {
            addr: endpoint.address(),
            tx,
        }
    }
}

/// One connection's loop: until the queue closes, send batches and read their replies. A batch
/// is written before the replies to the one ahead of it are read, so that the server has the
/// next commands at hand while this thread parses replies and packs the batch after.
fn connection(endpoint: Endpoint, rx: Receiver<Vec<Unit>>, events: Sender<Event>, cluster: bool) {
    let mut conn: Option<redis::Connection> = None;
    let mut db = None;
    // Databases this connection has selected with an answer: only these are selected within
    // a pipeline, where a refused SELECT would leave the commands after it in another database.
    let mut selectable = BTreeSet::new();
    // Batches written and not yet answered, oldest first: at most two.
    let mut flight: VecDeque<(Vec<Unit>, Packed)> = VecDeque::new();
    loop {
        // Wait for a batch only when none is being answered.
        let next = match flight.is_empty() {
            true => match rx.recv() {
                Ok(batch) => Some(batch),
                Err(_) => return,
            },
            false => rx.try_recv().ok(),
        };
        if let Some(batch) = next {
            if conn.is_none() {
                match endpoint.connect() {
                    Ok(c) => {
                        db = (!cluster).then(|| endpoint.db().max(0) as u64);
                        selectable = db.into_iter().collect();
                        conn = Some(c);
                    }
                    Err(e) => {
                        // No connection means nothing in flight: it went with the last one.
                        let _ = lose(batch, &e.to_string(), &events);
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let new_db = |u: &Unit| !cluster && !selectable.contains(&u.db);
            let batch = match batch.iter().any(new_db) {
                true => {
                    // Every reply of the batches in flight first, then a SELECT with its answer.
                    while !flight.is_empty() {
                        if !answer_oldest(&mut flight, &mut conn, &events) {
                            return;
                        }
                    }
                    match confirm_dbs(batch, &mut conn, &mut selectable, &mut db, &events) {
                        Some(b) if !b.is_empty() => b,
                        Some(_) => continue,
                        None => return,
                    }
                }
                false => batch,
            };
            let Some(c) = conn.as_mut() else {
                if !lose(batch, "connection lost", &events) {
                    return;
                }
                continue;
            };
            let packed = Packed::new(&batch, &mut db);
            let sent = c.send_packed_command(&packed.buf);
            flight.push_back((batch, packed));
            if let Err(e) = sent {
                if !lose_all(&mut flight, &e.to_string(), &mut conn, &events) {
                    return;
                }
                continue;
            }
            if flight.len() < 2 {
                continue;
            }
        }
        if !answer_oldest(&mut flight, &mut conn, &events) {
            return;
        }
    }
}

/// Reads the replies to the oldest batch in flight and reports them. False when the run has
/// ended.
fn answer_oldest(
    flight: &mut VecDeque<(Vec<Unit>, Packed)>,
    conn: &mut Option<redis::Connection>,
    events: &Sender<Event>,
) -> bool {
    let Some((mut batch, packed)) = flight.pop_front() else {
        return true;
    };
    let got = match conn.as_mut() {
        Some(c) => recv_replies(c, packed.replies()).map_err(|e| e.to_string()),
        None => Err("connection lost".to_string()),
    };
    match got {
        Ok(replies) => {
            let (outcomes, replies) = packed.outcomes(&mut batch, &replies);
            events.send(Event::Done(batch, outcomes, replies)).is_ok()
        }
        Err(why) => {
            flight.push_front((batch, packed));
            lose_all(flight, &why, conn, events)
        }
    }
}

/// Selects, one at a time and waiting for each answer, the databases of `batch` this
/// connection has not selected yet. The units of a database the target refuses fail (they are
/// sent nowhere); returns the others, or all of them to be sent again if the connection is
/// lost. None when the run has ended.
fn confirm_dbs(
    batch: Vec<Unit>,
    conn: &mut Option<redis::Connection>,
    selectable: &mut BTreeSet<u64>,
    db: &mut Option<u64>,
    events: &Sender<Event>,
) -> Option<Vec<Unit>> {
    let wanted: BTreeSet<u64> = batch.iter().map(|u| u.db).collect();
    let mut refused = Vec::new();
    for n in wanted.difference(&selectable.clone()) {
        let Some(c) = conn.as_mut() else { break };
        match redis::cmd("SELECT").arg(*n).query::<()>(c) {
            Ok(()) => {
                selectable.insert(*n);
                *db = Some(*n);
            }
            // Busy or in transition (LOADING after a restart...): nothing of the batch was
            // sent, so all of it goes again, as it was, after a wait.
            Err(e) if e.code().is_some() => match classify(
                e.code().unwrap_or(""),
                e.detail().unwrap_or(""),
                &Form::Direct,
            ) {
                Outcome::Retry(why) => {
                    let outcomes = vec![Outcome::Retry(why); batch.len()];
                    let sent = events.send(Event::Done(batch, outcomes, Replies::default()));
                    return sent.is_ok().then(Vec::new);
                }
                _ => refused.push((*n, e.to_string())),
            },
            Err(e) => {
                *conn = None;
                return lose(batch, &e.to_string(), events).then(Vec::new);
            }
        }
    }
    if refused.is_empty() {
        return Some(batch);
    }
    let (failed, ok): (Vec<Unit>, Vec<Unit>) = batch
        .into_iter()
        .partition(|u| refused.iter().any(|(n, _)| *n == u.db));
    let outcomes = failed
        .iter()
        .map(|u| {
            let why = refused.iter().find(|(n, _)| *n == u.db).map(|(_, e)| e);
            Outcome::Failed(format!(
                "DB the target refused SELECT {}: {}",
                u.db,
                why.map_or("", String::as_str)
            ))
        })
        .collect();
    let sent = events.send(Event::Done(failed, outcomes, Replies::default()));
    sent.is_ok().then_some(ok)
}

/// `n` replies, in order; an error here (not an error reply) means the connection is lost.
pub(super) fn recv_replies(c: &mut redis::Connection, n: usize) -> redis::RedisResult<Vec<Value>> {
    let mut replies = Vec::with_capacity(n);
    while replies.len() < n {
        match c.recv_response()? {
            Value::Push { .. } => {}
            reply => replies.push(reply),
        }
    }
    Ok(replies)
}

/// Every unit of `batch` without an answer, to be sent again. False when the run has ended.
fn lose(batch: Vec<Unit>, why: &str, events: &Sender<Event>) -> bool {
    let outcomes = vec![Outcome::Retry(Redirect::Lost(why.to_string())); batch.len()];
    events
        .send(Event::Done(batch, outcomes, Replies::default()))
        .is_ok()
}

/// The connection is dropped (a new one is made for the next batch) with every batch in flight.
fn lose_all(
    flight: &mut VecDeque<(Vec<Unit>, Packed)>,
    why: &str,
    conn: &mut Option<redis::Connection>,
    events: &Sender<Event>,
) -> bool {
    *conn = None;
    flight.drain(..).all(|(batch, _)| lose(batch, why, events))
}

/// Slot ranges and the address of the master serving each: from CLUSTER SLOTS.
pub fn cluster_slots(
    conn: &mut redis::Connection,
) -> redis::RedisResult<Vec<(u16, u16, String, u16)>> {
    let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
    let mut out = Vec::new();
    let Value::Array(ranges) = reply else {
        return Ok(out);
    };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        if (*start as usize) < SLOTS && (*end as usize) < SLOTS {
            out.push((*start as u16, *end as u16, host, *port as u16));
        }
    }
    Ok(out)
}
