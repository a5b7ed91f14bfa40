//! Whole-store snapshots: every table written out from one read transaction (a
//! point-in-time view, so writers keep going), and restored by replacing every table
//! in one write transaction. Used by Raft snapshots and `/v1/snapshot`.
//!
//! Format: the magic line, then records `[table: u8][key len: u32 BE][key][value
//! len: u32 BE][value]` in table order. Tables are numbered by their position in
//! [`Tables::all`], which is therefore append-only.

use std::io::{Read, Write};

use heed::RwTxn;

use super::{Result, StateError, Store, Tables, Touched, Writer};

const MAGIC: &[u8] = b"CONCORD-STATE-1\n";

/// Index of the `meta` table (Raft bookkeeping) in [`Tables::all`].
const META_TABLE: usize = 0;

impl Store {
    /// Writes the whole state to `out`.
    pub fn snapshot_to(&self, out: &mut impl Write) -> Result<()> {
        let rtxn = self.env.read_txn()?;
        out.write_all(MAGIC)?;
        for (i, (_, db)) in self.db.all().into_iter().enumerate() {
            for item in db.iter(&rtxn)? {
                let (k, v) = item?;
                out.write_all(&[i as u8])?;
                out.write_all(&(k.len() as u32).to_be_bytes())?;
                out.write_all(k)?;
                out.write_all(&(v.len() as u32).to_be_bytes())?;
                out.write_all(v)?;
            }
        }
        Ok(())
    }

    /// Replaces the whole state with a snapshot, atomically; wakes every watcher.
    pub fn restore_from(&self, input: &mut impl Read) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        load(&mut wtxn, &self.db, input, true)?;
        wtxn.commit()?;
        self.watches.notify(&Touched {
            everything: true,
            ..Default::default()
        });
        Ok(())
    }
}

/// Checks that `data` looks like a state snapshot (cheap; the full check is the load).
pub fn is_state_snapshot(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

impl Writer<'_, '_> {
    /// Replaces every table but the Raft bookkeeping with the snapshot's contents
    /// (`/v1/snapshot` restore, applied through Raft like any write).
    pub fn restore(&mut self, data: &[u8]) -> Result<()> {
        load(self.txn, self.db, &mut &data[..], false)?;
        self.touched.everything = true;
        Ok(())
    }
}

/// Clears the tables and loads the records. `with_meta` also replaces the Raft
/// bookkeeping (a Raft snapshot install), otherwise it is kept.
fn load(wtxn: &mut RwTxn<'_>, db: &Tables, input: &mut impl Read, with_meta: bool) -> Result<()> {
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| StateError::rejected("snapshot is empty or truncated"))?;
    if magic != MAGIC {
        return Err(StateError::rejected("not a concord state snapshot"));
    }
    let tables = db.all();
    for (i, (_, t)) in tables.iter().enumerate() {
        if with_meta || i != META_TABLE {
            t.clear(wtxn)?;
        }
    }
    let truncated = || StateError::rejected("snapshot is truncated");
    loop {
        let mut tag = [0u8; 1];
        if input.read(&mut tag)? == 0 {
            break;
        }
        let table = tag[0] as usize;
        let t = tables
            .get(table)
            .ok_or_else(|| StateError::rejected("snapshot has an unknown table"))?
            .1;
        let mut read_chunk = || -> Result<Vec<u8>> {
            let mut len = [0u8; 4];
            input.read_exact(&mut len).map_err(|_| truncated())?;
            let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
            input.read_exact(&mut buf).map_err(|_| truncated())?;
            Ok(buf)
        };
        let k = read_chunk()?;
        let v = read_chunk()?;
        if with_meta || table != META_TABLE {
            t.put(wtxn, &k, &v)?;
        }
    }
    Ok(())
}
