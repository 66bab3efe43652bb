//! The target's nodes: the slot map of a cluster, and per node a few connections, each a thread
//! that sends batches of units and hands back what became of each.

use std::collections::VecDeque;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use redis::Value;

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

/// One connection's loop: until the queue closes, send batches and read their replies. A batch
/// is written before the replies to the one ahead of it are read, so that the server has the
/// next commands at hand while this thread parses replies and packs the batch after.
fn connection(endpoint: Endpoint, rx: Receiver<Vec<Unit>>, events: Sender<Event>, cluster: bool) {
    let mut conn: Option<redis::Connection> = None;
    let mut db = None;
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
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match endpoint.connect() {
                    Ok(c) => {
                        db = (!cluster).then(|| endpoint.db().max(0) as u64);
                        conn.insert(c)
                    }
                    Err(e) => {
                        // No connection means nothing in flight: it went with the last one.
                        let _ = lose(batch, &e.to_string(), &events);
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
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
        let Some((mut batch, packed)) = flight.pop_front() else {
            continue;
        };
        let got = match conn.as_mut() {
            Some(c) => recv_replies(c, packed.replies()).map_err(|e| e.to_string()),
            None => Err("connection lost".to_string()),
        };
        let replies = match got {
            Ok(replies) => replies,
            Err(why) => {
                flight.push_front((batch, packed));
                if !lose_all(&mut flight, &why, &mut conn, &events) {
                    return;
                }
                continue;
            }
        };
        let (outcomes, replies) = packed.outcomes(&mut batch, &replies);
        if events.send(Event::Done(batch, outcomes, replies)).is_err() {
            return;
        }
    }
}

/// `n` replies, in order; an error here (not an error reply) means the connection is lost.
fn recv_replies(c: &mut redis::Connection, n: usize) -> redis::RedisResult<Vec<Value>> {
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
