//! Singleton documents replicated with the rest of the state (the Connect CA, the
//! autopilot configuration, ...), each stored whole under a name.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::schema::{get_json, put_json};
use super::{ReaderRef, Result, Table, Writer};

impl ReaderRef<'_> {
    pub fn system<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        get_json(&self.db.system, self.txn, name.as_bytes())
    }
}

impl Writer<'_, '_> {
    /// Stores a document and bumps the table it belongs to (for blocking readers).
    pub fn put_system<T: Serialize>(&mut self, name: &str, table: Table, doc: &T) -> Result<()> {
        put_json(&self.db.system, self.txn, name.as_bytes(), doc)?;
        self.bump(table)
    }
}

impl Writer<'_, '_> {
    /// Stores a configuration document as Consul stores its singleton configs:
    /// stamped with this write's index (`CreateIndex` kept from the first
    /// write). With `cas`, only when the stored document's `ModifyIndex` equals
    /// it, none stored counting as 0; returns whether it was stored. The check
    /// and the write are one step of the state machine, so two CAS writers on
    /// the same index cannot both win.
    pub fn put_config(
        &mut self,
        name: &str,
        table: Table,
        mut doc: Value,
        cas: Option<u64>,
    ) -> Result<bool> {
        let current: Option<Value> = self.reader().system(name)?;
        let index_of = |d: &Value, key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0);
        if cas.is_some_and(|cas| current.as_ref().map_or(0, |c| index_of(c, "ModifyIndex")) != cas)
        {
            return Ok(false);
        }
        let create = current
            .as_ref()
            .map(|c| index_of(c, "CreateIndex"))
            .filter(|i| *i > 0)
            .unwrap_or(self.idx);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("CreateIndex".into(), create.into());
            obj.insert("ModifyIndex".into(), self.idx.into());
        }
        self.put_system(name, table, &doc)?;
        Ok(true)
    }
}
