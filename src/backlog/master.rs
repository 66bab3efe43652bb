//! What a master says of itself (INFO replication and server), read before a replica link
//! asks it for anything: the `PSYNC` arguments of its backlog, what an epoch records of it,
//! why it answered a `PSYNC` with a full resync, and its current offset. Shared by
//! [`super::capture`] and the `sync` loop.

use anyhow::{Context, Result, bail};

use super::psync;
use super::store;
use super::store::writer::EpochStart;

/// What the master says of itself when a replica link starts.
pub struct Facts {
    info: psync::Info,
    server: Option<String>,
}

impl Facts {
    pub fn read(conn: &mut redis::Connection) -> Result<Facts> {
        let replication: String = redis::cmd("INFO").arg("replication").query(conn)?;
        let server: String = redis::cmd("INFO").arg("server").query(conn)?;
        let info = psync::Info::parse(&replication);
        let server_info = psync::Info::parse(&server);
        let version = match server_info.get("valkey_version") {
            Some(v) => Some(format!("valkey {v}")),
            None => server_info
                .get("redis_version")
                .map(|v| format!("redis {v}")),
        };
        Ok(Facts {
            info,
            server: version,
        })
    }

    pub fn number(&self, field: &str) -> Option<u64> {
        self.info.get(field)?.parse().ok()
    }

    /// `PSYNC`'s arguments for the oldest byte the master's backlog holds.
    pub fn backlog_start(&self) -> Result<(String, u64)> {
        if self.number("repl_backlog_active") != Some(1) {
            bail!(
                "the master holds no backlog (it has had no replica for repl-backlog-ttl): nothing to capture without a snapshot"
            );
        }
        let id = self
            .info
            .get("master_replid")
            .context("INFO replication has no master_replid")?;
        let first = self
            .number("repl_backlog_first_byte_offset")
            .context("INFO replication has no repl_backlog_first_byte_offset")?;
        Ok((id.to_string(), first))
    }

    pub fn epoch_start(
        &self,
        start_kind: store::Start,
        replid: String,
        psync_offset: u64,
    ) -> EpochStart {
        let replid2 = self
            .info
            .get("master_replid2")
            .filter(|id| id.bytes().any(|b| b != b'0'));
        EpochStart {
            start_kind,
            replid,
            psync_offset,
            server: self.server.clone(),
            backlog_size: self.number("repl_backlog_size"),
            replid2: replid2
                .map(str::to_string)
                .zip(self.number("second_repl_offset")),
        }
    }

    /// Why the master answered a `PSYNC <id> <next>` with a full resync, by its own rule
    /// applied to its INFO just before.
    pub fn why_full(&self, id: &str, next: u64) -> String {
        let request = psync::Request {
            replid: id.to_string(),
            offset: next as i64,
        };
        match psync::Master::from_info(&self.info) {
            Ok(m) => {
                let d = psync::decide(&m, &request);
                format!(
                    "the master did not continue from offset {next}: rule {}: {} ({})",
                    d.rule.id(),
                    d.reason,
                    d.arithmetic
                )
            }
            Err(_) => format!("the master did not continue from offset {next}"),
        }
    }
}

/// The master's `master_repl_offset` now (None when it does not answer).
pub fn master_offset(conn: &mut redis::Connection) -> Option<u64> {
    let text: String = redis::cmd("INFO").arg("replication").query(conn).ok()?;
    psync::Info::parse(&text)
        .get("master_repl_offset")?
        .parse()
        .ok()
}
