//! The sync's checkpoint (`--checkpoint FILE`): which history of the source it follows (the
//! replid), the run whose progress key on the target says how far it is applied, and the last
//! offset the target acknowledged when it was written (a hint: the key is the truth). Written
//! atomically (a temporary file renamed over it).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The source and the target, without credentials.
    pub source: String,
    pub target: String,
    /// The replication id of the source's history the target follows.
    pub replid: String,
    /// The run id: the target's progress key is `rdbtool-progress:<run_id in hex>`.
    pub run_id: u64,
    /// The last offset the target acknowledged (the snapshot's while a full sync runs).
    pub offset: u64,
    /// False while a full sync is under way: the target holds part of a snapshot, and a
    /// restart must do it again.
    pub synced: bool,
    pub updated_ms: i64,
}

impl State {
    /// The checkpoint at `path`, None when there is none yet.
    pub fn load(path: &Path) -> Result<Option<State>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        let state = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a sync checkpoint", path.display()))?;
        Ok(Some(state))
    }

    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.updated_ms = crate::backlog::store::now_ms() as i64;
        crate::replay::checkpoint::save_json(self, path)
            .with_context(|| format!("writing the checkpoint {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.json");
        assert_eq!(State::load(&path).unwrap(), None);
        let mut s = State {
            source: "redis://a:1".into(),
            target: "redis://b:2".into(),
            replid: "x".repeat(40),
            run_id: 0xabc,
            offset: 99,
            synced: true,
            updated_ms: 0,
        };
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(s));
        std::fs::write(&path, "{").unwrap();
        assert!(State::load(&path).is_err());
    }
}
