//! Coordinates per node (and segment); updates replace the whole entry.

use super::schema::{self, lower, put_json};
use super::{ReaderRef, Result, Table, Writer};
use crate::structs::CoordinateEntry;

impl ReaderRef<'_> {
    pub fn coordinates(&self) -> Result<(u64, Vec<CoordinateEntry>)> {
        let idx = self.table_index(&[Table::Coordinates])?;
        let all = schema::scan_json_by(&self.db.coordinates, self.txn, b"", by_node)?;
        Ok((idx, all))
    }

    pub fn node_coordinates(&self, node: &str) -> Result<(u64, Vec<CoordinateEntry>)> {
        let idx = self.table_index(&[Table::Coordinates])?;
        let prefix = schema::prefix(&[&lower(node)]);
        Ok((
            idx,
            schema::scan_json_by(&self.db.coordinates, self.txn, &prefix, by_node)?,
        ))
    }
}

fn by_node(e: &CoordinateEntry) -> (String, String) {
    (lower(&e.node), e.segment.clone())
}

impl Writer<'_, '_> {
    /// Stores coordinates for nodes that exist (others are dropped, as Consul does).
    pub fn coordinates_update(&mut self, entries: &[CoordinateEntry]) -> Result<()> {
        let mut any = false;
        for e in entries {
            if self.reader().node(&e.node)?.is_none() {
                continue;
            }
            let key = schema::key(&[&lower(&e.node), &e.segment]);
            put_json(&self.db.coordinates, self.txn, &key, e)?;
            any = true;
        }
        if any {
            self.bump(Table::Coordinates)?;
        }
        Ok(())
    }
}
