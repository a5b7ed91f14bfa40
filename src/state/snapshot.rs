//! Whole-store snapshots: every table written out from one read transaction (a
//! point-in-time view, so writers keep going), and restored by replacing every table
//! in one write transaction. Used by Raft snapshots and `/v1/snapshot`.
//!
//! Format: the magic line, then records `[table: u8][key len: u32 BE][key][value
//! len: u32 BE][value]` in table order. Tables are numbered by their position in
//! [`Tables::all`], which is therefore append-only.

use std::io::{Read, Write};

use super::{Result, StateError, Store, Touched};

const MAGIC: &[u8] = b"CONCORD-STATE-1\n";

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
        let mut magic = vec![0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| StateError::rejected("snapshot is empty or truncated"))?;
        if magic != MAGIC {
            return Err(StateError::rejected("not a concord state snapshot"));
        }
        let tables = self.db.all();
        let mut wtxn = self.env.write_txn()?;
        for (_, db) in tables.iter() {
            db.clear(&mut wtxn)?;
        }
        let truncated = || StateError::rejected("snapshot is truncated");
        loop {
            let mut tag = [0u8; 1];
            match input.read(&mut tag)? {
                0 => break,
                _ => {
                    let db = tables
                        .get(tag[0] as usize)
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
                    db.put(&mut wtxn, &k, &v)?;
                }
            }
        }
        wtxn.commit()?;
        self.watches.notify(&Touched {
            everything: true,
            ..Default::default()
        });
        Ok(())
    }
}
