//! Whole-store snapshots: every table written out from one read transaction (a
//! point-in-time view, so writers keep going), and restored by replacing every table
//! in one write transaction. Used by Raft snapshots and `/v1/snapshot`.
//!
//! Format: the magic line, then records `[table: u8][key len: u32 BE][key][value
//! len: u32 BE][value]` in table order. Tables are numbered by their position in
//! [`TABLE_NAMES`], which is therefore append-only. Snapshots of format 1 (older
//! key layout) are upgraded record by record as they load (see [`super::upgrade`]).

use std::io::{Read, Write};

use heed::RwTxn;

use super::schema::TABLE_NAMES;
use super::upgrade::{self, FORMAT, FORMAT_KEY};
use super::{Result, StateError, Store, Tables, Touched, Writer};

const MAGIC: &[u8] = b"CONCORD-STATE-2\n";
/// Format 1: the same framing over the older key layout.
const MAGIC_V1: &[u8] = b"CONCORD-STATE-1\n";

/// Index of the `meta` table (Raft bookkeeping) in [`Tables::all`].
const META_TABLE: usize = 0;

impl Store {
    /// Writes the whole state to `out`.
    pub fn snapshot_to(&self, out: &mut impl Write) -> Result<()> {
        self.dump(out, MAGIC)
    }

    /// Writes every table under `magic` (which says how to read their keys).
    fn dump(&self, out: &mut impl Write, magic: &[u8]) -> Result<()> {
        let rtxn = self.env.read_txn()?;
        out.write_all(magic)?;
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

impl Store {
    /// Brings a store opened from disk to the current format: a new store is
    /// stamped, a format-1 store is rewritten (dumped, then loaded with its records
    /// upgraded, in one write transaction), a newer one is refused.
    pub(super) fn check_format(&self) -> Result<()> {
        let rtxn = self.env.read_txn()?;
        let stamped: Option<u32> = super::schema::get_json(&self.db.meta, &rtxn, FORMAT_KEY)?;
        let mut empty = true;
        for (_, db) in self.db.all() {
            empty &= db.is_empty(&rtxn)?;
        }
        drop(rtxn);
        match stamped {
            Some(FORMAT) => Ok(()),
            Some(other) => Err(StateError::rejected(format!(
                "the state store was written in format {other}, newer than this concord reads ({FORMAT}); \
                 run the newer version or restore a snapshot"
            ))),
            None => {
                let mut old = Vec::new();
                if !empty {
                    self.dump(&mut old, MAGIC_V1)?;
                    tracing::info!(
                        bytes = old.len(),
                        "upgrading the state store to format {FORMAT}"
                    );
                } else {
                    old.extend_from_slice(MAGIC);
                }
                let mut wtxn = self.env.write_txn()?;
                load(&mut wtxn, &self.db, &mut &old[..], true)?;
                wtxn.commit()?;
                Ok(self.env.force_sync()?)
            }
        }
    }
}

/// Checks that `data` looks like a state snapshot (cheap; the full check is the load).
pub fn is_state_snapshot(data: &[u8]) -> bool {
    data.starts_with(MAGIC) || data.starts_with(MAGIC_V1)
}

/// One record of a snapshot, as `concord snapshot inspect` reports it.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub table: &'static str,
    pub key: &'a [u8],
    /// The record's bytes in the snapshot, framing included.
    pub size: usize,
}

/// Lists the records of a snapshot without loading it anywhere.
pub fn records(data: &[u8]) -> std::result::Result<Vec<Record<'_>>, String> {
    let mut rest = data
        .strip_prefix(MAGIC)
        .or_else(|| data.strip_prefix(MAGIC_V1))
        .ok_or("not a concord state snapshot")?;
    let mut out = Vec::new();
    let chunk = |buf: &mut &'_ [u8]| -> std::result::Result<usize, String> {
        let (len, tail) = buf
            .split_first_chunk::<4>()
            .ok_or("snapshot is truncated")?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err("snapshot is truncated".into());
        }
        *buf = tail;
        Ok(len)
    };
    while let Some((&tag, tail)) = rest.split_first() {
        let table = *TABLE_NAMES
            .get(tag as usize)
            .ok_or("snapshot has an unknown table")?;
        let start = rest.len();
        rest = tail;
        let key_len = chunk(&mut rest)?;
        let key = &rest[..key_len];
        rest = &rest[key_len..];
        let value_len = chunk(&mut rest)?;
        rest = &rest[value_len..];
        out.push(Record {
            table,
            key,
            size: start - rest.len(),
        });
    }
    Ok(out)
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
    let v1 = magic == MAGIC_V1;
    if !v1 && magic != MAGIC {
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
        let (mut k, mut v) = (read_chunk()?, read_chunk()?);
        if v1 {
            (k, v) = upgrade::record_v1(TABLE_NAMES[table], k, v);
        }
        if with_meta || table != META_TABLE {
            t.put(wtxn, &k, &v)?;
        }
    }
    if with_meta {
        let format = serde_json::to_vec(&FORMAT)?;
        tables[META_TABLE].1.put(wtxn, FORMAT_KEY, &format)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(table: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut r = vec![table];
        r.extend((key.len() as u32).to_be_bytes());
        r.extend(key);
        r.extend((value.len() as u32).to_be_bytes());
        r.extend(value);
        r
    }

    #[test]
    fn records_are_listed_with_their_table_and_size() {
        let mut data = MAGIC.to_vec();
        data.extend(record(6, b"app/a", b"xyz"));
        data.extend(record(12, b"doc", b""));
        let recs = records(&data).unwrap();
        assert_eq!(
            recs,
            vec![
                Record {
                    table: "kv",
                    key: b"app/a",
                    size: 1 + 4 + 5 + 4 + 3
                },
                Record {
                    table: "system",
                    key: b"doc",
                    size: 1 + 4 + 3 + 4
                },
            ]
        );
        data.extend(record(6, b"k", b"v"));
        data.truncate(data.len() - 1);
        assert_eq!(records(&data).unwrap_err(), "snapshot is truncated");
        assert!(records(b"nope").is_err());
    }
}
