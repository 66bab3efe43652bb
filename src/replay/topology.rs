//! Where a unit goes: the target's nodes, and in a cluster the slot map (from `CLUSTER SLOTS`,
//! refreshed on MOVED and on a lost connection).

use super::*;

impl<'h> Replay<'h> {
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    pub fn node_addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Per node: used memory and `maxmemory` (0: no limit), when INFO memory answers.
    pub fn node_memory(&self) -> Vec<(String, Option<(u64, u64)>)> {
        self.nodes
            .iter()
            .map(|n| {
                let memory = split_addr(&n.addr)
                    .and_then(|(host, port)| self.endpoint.at(host, port).ok())
                    .and_then(|e| e.connect().ok())
                    .and_then(|mut c| endpoint::memory(&mut c));
                (n.addr.clone(), memory)
            })
            .collect()
    }

    pub(super) fn route(&self, unit: &Unit) -> usize {
        match unit.ask.or(unit.pinned) {
            Some(node) => node,
            None if self.cluster => self.slot_map[unit.slot as usize],
            None => 0,
        }
    }

    /// Re-reads the slot map from any node that answers (at most every 200 ms).
    pub(super) fn refresh(&mut self) {
        if !self.cluster
            || self
                .last_refresh
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_refresh = Some(Instant::now());
        self.summary.topology_refreshes += 1;
        let mut candidates = vec![self.endpoint.clone()];
        for n in &self.nodes {
            if let Some((host, port)) = split_addr(&n.addr)
                && let Ok(e) = self.endpoint.at(host, port)
            {
                candidates.push(e);
            }
        }
        for e in candidates {
            let Ok(mut conn) = e.connect() else { continue };
            if let Ok(ranges) = node::cluster_slots(&mut conn)
                && !ranges.is_empty()
                && self.apply_slots(ranges).is_ok()
            {
                return;
            }
        }
    }

    pub(super) fn apply_slots(
        &mut self,
        ranges: Vec<(u16, u16, String, u16)>,
    ) -> Result<(), Error> {
        for (start, end, host, port) in ranges {
            let host = if host.is_empty() || host == "?" {
                split_addr(&self.endpoint.address()).map_or(host, |(h, _)| h.to_string())
            } else {
                host
            };
            let node = self.node_index(&format!("{host}:{port}"))?;
            for slot in start..=end {
                self.slot_map[slot as usize] = node;
            }
        }
        Ok(())
    }

    /// The node at `addr`, started on first use.
    pub(super) fn node_index(&mut self, addr: &str) -> Result<usize, Error> {
        if let Some(i) = self.nodes.iter().position(|n| n.addr == addr) {
            return Ok(i);
        }
        let endpoint = if self.nodes.is_empty() && addr == self.endpoint.address() {
            self.endpoint.clone()
        } else {
            let (host, port) = split_addr(addr)
                .ok_or_else(|| Error::Target(format!("bad node address {addr:?}")))?;
            self.endpoint
                .at(host, port)
                .map_err(|e| Error::Target(format!("{addr}: {e}")))?
        };
        self.nodes.push(Node::start(
            &endpoint,
            self.opts.connections.max(1),
            &self.events_tx,
            self.cluster,
        ));
        self.pending.push(Default::default());
        self.dry_dbs.push(self.endpoint.db().max(0) as u64);
        Ok(self.nodes.len() - 1)
    }
}

pub(super) fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}
