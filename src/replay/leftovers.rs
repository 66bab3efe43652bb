//! Temporary keys a cut run left behind. A collection is built under a temporary name in its
//! key's slot and renamed into place (see `Form::Staged`); a run cut between the two (the tool
//! killed, or the target killed after it made the value durable but before the rename) leaves
//! the value under that name. The names carry the run's id, which the checkpoint keeps, so a
//! `--resume` finds and deletes what its predecessor left: nothing of a replay stays on the
//! target that the source did not hold.

use super::topology::split_addr;
use super::{Error, Replay, count};

/// What every temporary name of run `run_id` holds after its slot tag.
pub fn marker(run_id: u64) -> String {
    format!("rdbtool-tmp:{run_id:x}:")
}

/// Deletes, in each database of `dbs` (`None`: only the connection's, as in a cluster), the
/// temporary keys of run `run_id`; returns how many there were.
pub fn delete(
    conn: &mut redis::Connection,
    dbs: Option<&[u64]>,
    run_id: u64,
) -> redis::RedisResult<u64> {
    let pattern = format!("*}}{}*", marker(run_id));
    let mut deleted = 0;
    for db in dbs.map_or(vec![None], |d| d.iter().copied().map(Some).collect()) {
        if let Some(db) = db {
            redis::cmd("SELECT").arg(db).query::<()>(conn)?;
        }
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(conn)?;
            for key in keys {
                deleted += redis::cmd("DEL").arg(key).query::<u64>(conn)?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

impl<'h> Replay<'h> {
    /// A resumed run: deletes on every node the temporary keys the cut run left (its id is
    /// this run's), and says how many there were.
    pub(super) fn delete_leftovers(&mut self) -> Result<(), Error> {
        let dbs: Vec<u64> = self.selectable.iter().copied().collect();
        let mut deleted = 0;
        for addr in self.node_addresses() {
            let endpoint = match split_addr(&addr) {
                Some((host, port)) if self.cluster => self.endpoint.at(host, port),
                _ => Ok(self.endpoint.clone()),
            };
            let mut conn = endpoint
                .and_then(|e| e.connect())
                .map_err(|e| Error::Target(format!("{addr}: {e}")))?;
            let dbs = (!self.cluster).then_some(&dbs[..]);
            deleted += delete(&mut conn, dbs, self.run_id)
                .map_err(|e| Error::Target(format!("{addr}: deleting temporary keys: {e}")))?;
        }
        if deleted > 0 {
            self.notice(format!(
                "{} of the cut run deleted (values it built aside and had not renamed into place)",
                count(deleted, "temporary key")
            ));
        }
        Ok(())
    }
}
