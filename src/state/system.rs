//! Singleton documents replicated with the rest of the state (the Connect CA, the
//! autopilot configuration, ...), each stored whole under a name.

use serde::{Serialize, de::DeserializeOwned};

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
