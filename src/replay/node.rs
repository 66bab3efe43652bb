//! The target's nodes: the slot map of a cluster, and per node a few connections, each a thread
//! that sends batches of units and hands back what became of each.

use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use redis::{ConnectionLike, Value};

use super::endpoint::Endpoint;
use super::slots::SLOTS;
use super::unit::{Outcome, Packed, Redirect, Replies, Unit};

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

/// One connection's loop: until the queue closes, send a batch, read all its replies.
fn connection(endpoint: Endpoint, rx: Receiver<Vec<Unit>>, events: Sender<Event>, cluster: bool) {
    let mut conn: Option<redis::Connection> = None;
    let mut db = None;
    for batch in rx {
        if conn.is_none() {
            match endpoint.connect() {
                Ok(c) => {
                    conn = Some(c);
                    db = (!cluster).then(|| endpoint.db().max(0) as u64);
                }
                Err(e) => {
                    let lost = Outcome::Retry(Redirect::Lost(e.to_string()));
                    let outcomes = vec![lost; batch.len()];
                    let _ = events.send(Event::Done(batch, outcomes, Replies::default()));
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let packed = Packed::new(&batch, &mut db);
        let (outcomes, replies) = match c.req_packed_commands(&packed.buf, 0, packed.replies()) {
            Ok(replies) if replies.len() == packed.replies() => packed.outcomes(&batch, &replies),
            Ok(_) => lost(&batch, "short reply".into(), &mut conn),
            Err(e) => lost(&batch, e.to_string(), &mut conn),
        };
        if events.send(Event::Done(batch, outcomes, replies)).is_err() {
            return;
        }
    }
}

/// Every unit of a batch without an answer; the connection is dropped (a new one is made).
fn lost(
    batch: &[Unit],
    why: String,
    conn: &mut Option<redis::Connection>,
) -> (Vec<Outcome>, Replies) {
    *conn = None;
    let outcomes = vec![Outcome::Retry(Redirect::Lost(why)); batch.len()];
    (outcomes, Replies::default())
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
