//! KV semantics: set, CAS, lock/unlock, deletes with tombstones, and the index rules
//! blocking queries rely on (a prefix's index never goes backwards while its
//! tombstones live).

use std::time::Duration;

use super::keys;
use super::schema::{self, get_json, put_json};
use super::{ReaderRef, Result, StateError, Table, Writer};
use crate::structs::{DirEntry, MAX_LOCK_DELAY, SESSION_BEHAVIOR_DELETE, Session};

impl ReaderRef<'_> {
    /// The KV table index including tombstones (what a missing key reports).
    pub fn kv_max_index(&self) -> Result<u64> {
        let kvs = self.named_index("kvs")?;
        let graves = self.named_index("tombstones")?;
        Ok(kvs.max(graves))
    }

    /// One key: `(index, entry)`; the index is the entry's ModifyIndex, or the table
    /// index when the key is missing.
    pub fn kv_get(&self, key: &str) -> Result<(u64, Option<DirEntry>)> {
        match get_json::<DirEntry>(&self.db.kv, self.txn, &keys::kv(key))? {
            Some(e) => Ok((e.modify_index, Some(e))),
            None => Ok((self.kv_max_index()?, None)),
        }
    }

    /// Every entry whose key starts with `prefix` (a string prefix, not a path), in
    /// key order.
    fn kv_rows(&self, prefix: &str) -> Result<Vec<DirEntry>> {
        let (scan, check) = keys::kv_scan(prefix);
        let mut out: Vec<DirEntry> = Vec::new();
        let mut hashed = false;
        for item in schema::iter_prefix(&self.db.kv, self.txn, &scan)? {
            let (k, v) = item?;
            let entry: DirEntry = serde_json::from_slice(v)?;
            if check && !entry.key.starts_with(prefix) {
                continue;
            }
            hashed |= keys::has_hashed(k);
            out.push(entry);
        }
        if hashed {
            out.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(out)
    }

    /// Every entry whose key starts with `prefix` (a string prefix, not a path).
    pub fn kv_list(&self, prefix: &str) -> Result<(u64, Vec<DirEntry>)> {
        let entries = self.kv_rows(prefix)?;
        let idx = self.prefix_index(prefix, entries.iter().map(|e| e.modify_index).max())?;
        Ok((idx, entries))
    }

    /// Keys under `prefix`, rolled up at the first `separator` after the prefix.
    pub fn kv_keys(&self, prefix: &str, separator: &str) -> Result<(u64, Vec<String>)> {
        let mut keys: Vec<String> = Vec::new();
        let mut max = None::<u64>;
        for entry in self.kv_rows(prefix)? {
            max = Some(max.map_or(entry.modify_index, |m: u64| m.max(entry.modify_index)));
            let key = entry.key;
            let rolled = if separator.is_empty() {
                key
            } else {
                match key[prefix.len()..].find(separator) {
                    Some(pos) => key[..prefix.len() + pos + separator.len()].to_string(),
                    None => key,
                }
            };
            if keys.last() != Some(&rolled) {
                keys.push(rolled);
            }
        }
        let idx = self.prefix_index(prefix, max)?;
        Ok((idx, keys))
    }

    /// Consul's list index: the highest ModifyIndex among the entries and tombstones
    /// under the prefix, or the whole table's index when the prefix is empty or holds
    /// nothing at all.
    fn prefix_index(&self, prefix: &str, entries_max: Option<u64>) -> Result<u64> {
        if prefix.is_empty() {
            return self.kv_max_index();
        }
        let mut idx = entries_max.unwrap_or(0);
        let (scan, check) = keys::kv_scan(prefix);
        for item in schema::iter_prefix(&self.db.tombstones, self.txn, &scan)? {
            let (k, v) = item?;
            let (index, key) = tombstone(k, v);
            if !check || key.starts_with(prefix.as_bytes()) {
                idx = idx.max(index);
            }
        }
        if idx == 0 {
            idx = self.kv_max_index()?;
        }
        Ok(idx)
    }
}

impl Writer<'_, '_> {
    fn kv_put(&mut self, entry: &DirEntry, old: Option<&DirEntry>) -> Result<()> {
        put_json(&self.db.kv, self.txn, &keys::kv(&entry.key), entry)?;
        if let Some(old_session) = old.and_then(|o| o.session.as_deref())
            && entry.session.as_deref() != Some(old_session)
        {
            self.db
                .kv_by_session
                .delete(self.txn, &schema::key(&[old_session, &entry.key]))?;
        }
        if let Some(s) = entry.session.as_deref() {
            // The row holds the key itself: a long key's LMDB key does not.
            self.db.kv_by_session.put(
                self.txn,
                &schema::key(&[s, &entry.key]),
                entry.key.as_bytes(),
            )?;
        }
        schema::set_index(&self.db.index, self.txn, b"kvs", self.idx)?;
        self.touched.tables.insert(Table::Kvs);
        self.touched.kv_keys.insert(entry.key.clone());
        Ok(())
    }

    /// Stores `entry`. Unless `update_session`, the stored session is kept. A write
    /// that changes nothing keeps the old ModifyIndex and wakes nobody. Returns the
    /// entry as stored.
    pub fn kv_set(&mut self, mut entry: DirEntry, update_session: bool) -> Result<DirEntry> {
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(&entry.key))?;
        entry.create_index = existing.as_ref().map_or(self.idx, |e| e.create_index);
        if !update_session {
            entry.session = existing.as_ref().and_then(|e| e.session.clone());
        }
        if let Some(old) = &existing
            && old.same_content(&entry)
        {
            entry.modify_index = old.modify_index;
            return Ok(entry);
        }
        entry.modify_index = self.idx;
        self.kv_put(&entry, existing.as_ref())?;
        Ok(entry)
    }

    /// Check-and-set: `cas == 0` creates only; otherwise the stored ModifyIndex must
    /// equal `cas`. `None` when the check fails.
    pub fn kv_cas(&mut self, entry: DirEntry, cas: u64) -> Result<Option<DirEntry>> {
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(&entry.key))?;
        let ok = match (&existing, cas) {
            (None, 0) => true,
            (Some(_), 0) => false,
            (None, _) => false,
            (Some(e), n) => e.modify_index == n,
        };
        if !ok {
            return Ok(None);
        }
        self.kv_set(entry, false).map(Some)
    }

    fn live_session(&self, id: &str) -> Result<Session> {
        if id.is_empty() {
            return Err(StateError::rejected("missing session"));
        }
        get_json::<Session>(&self.db.sessions, self.txn, &schema::key(&[id]))?
            .ok_or_else(|| StateError::rejected(format!("invalid session {id:?}")))
    }

    /// Acquires the lock on a key for `session` (also writing value and flags).
    /// `None` when another session holds it.
    pub fn kv_lock(&mut self, mut entry: DirEntry, session: &str) -> Result<Option<DirEntry>> {
        self.live_session(session)?;
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(&entry.key))?;
        entry.lock_index = match &existing {
            Some(e) if e.session.as_deref() == Some(session) => e.lock_index,
            Some(e) if e.session.is_some() => return Ok(None),
            Some(e) => e.lock_index + 1,
            None => 1,
        };
        entry.session = Some(session.to_string());
        self.kv_set(entry, true).map(Some)
    }

    /// Releases the lock `session` holds on a key (also writing value and flags).
    /// `None` when the key is missing or held by someone else. As in Consul, the
    /// session need not exist any more: releasing after it was invalidated is a
    /// plain `false`, not an error.
    pub fn kv_unlock(&mut self, mut entry: DirEntry, session: &str) -> Result<Option<DirEntry>> {
        if session.is_empty() {
            return Err(StateError::rejected("missing session"));
        }
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(&entry.key))?;
        match existing {
            Some(e) if e.session.as_deref() == Some(session) => {
                entry.lock_index = e.lock_index;
                entry.session = None;
                self.kv_set(entry, true).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Deletes one key, leaving a tombstone. Deleting a missing key changes nothing.
    pub fn kv_delete(&mut self, key: &str) -> Result<()> {
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(key))?;
        let Some(old) = existing else {
            return Ok(());
        };
        let lmdb_key = keys::kv(key);
        self.db.kv.delete(self.txn, &lmdb_key)?;
        if let Some(s) = old.session.as_deref() {
            self.db
                .kv_by_session
                .delete(self.txn, &schema::key(&[s, key]))?;
        }
        // A tombstone holds its index, and the key itself when the LMDB key is hashed.
        let mut grave = self.idx.to_be_bytes().to_vec();
        if keys::has_hashed(&lmdb_key) {
            grave.extend_from_slice(key.as_bytes());
        }
        self.db.tombstones.put(self.txn, &lmdb_key, &grave)?;
        schema::set_index(&self.db.index, self.txn, b"kvs", self.idx)?;
        schema::set_index(&self.db.index, self.txn, b"tombstones", self.idx)?;
        self.touched.tables.insert(Table::Kvs);
        self.touched.kv_keys.insert(key.to_string());
        Ok(())
    }

    /// Deletes only if the stored ModifyIndex equals `cas`; a missing key counts as
    /// deleted (`true`), as in Consul.
    pub fn kv_delete_cas(&mut self, key: &str, cas: u64) -> Result<bool> {
        let existing: Option<DirEntry> = get_json(&self.db.kv, self.txn, &keys::kv(key))?;
        match existing {
            None => Ok(true),
            Some(e) if e.modify_index != cas => Ok(false),
            Some(_) => {
                self.kv_delete(key)?;
                Ok(true)
            }
        }
    }

    /// Deletes every key with the string prefix.
    pub fn kv_delete_tree(&mut self, prefix: &str) -> Result<()> {
        for entry in self.reader().kv_rows(prefix)? {
            self.kv_delete(&entry.key)?;
        }
        Ok(())
    }

    /// Removes tombstones written at or before `index`.
    pub fn kv_reap_tombstones(&mut self, index: u64) -> Result<usize> {
        let mut doomed = Vec::new();
        for item in self.db.tombstones.iter(self.txn)? {
            let (k, v) = item?;
            if tombstone(k, v).0 <= index {
                doomed.push(k.to_vec());
            }
        }
        for k in &doomed {
            self.db.tombstones.delete(self.txn, k)?;
        }
        Ok(doomed.len())
    }

    /// What a session's end does to the keys it holds: `release` clears the holder,
    /// `delete` removes the key; either way a lock delay starts on the key.
    pub(crate) fn kv_release_session(&mut self, session: &Session) -> Result<()> {
        let delay = Duration::from_nanos(session.lock_delay).min(MAX_LOCK_DELAY);
        let prefix = schema::prefix(&[&session.id]);
        let mut held = Vec::new();
        for item in schema::iter_prefix(&self.db.kv_by_session, self.txn, &prefix)? {
            let (k, v) = item?;
            held.push((k.to_vec(), String::from_utf8_lossy(v).into_owned()));
        }
        for (k, key) in held {
            if session.behavior == SESSION_BEHAVIOR_DELETE {
                self.kv_delete(&key)?;
            } else if let Some(mut e) =
                get_json::<DirEntry>(&self.db.kv, self.txn, &keys::kv(&key))?
            {
                let old = e.clone();
                e.session = None;
                e.modify_index = self.idx;
                self.kv_put(&e, Some(&old))?;
            }
            self.db.kv_by_session.delete(self.txn, &k)?;
            if !delay.is_zero() {
                self.effects.lock_delays.push((key, delay));
            }
        }
        Ok(())
    }
}

/// A tombstone's index and key (the key is in the value when the LMDB key is hashed).
fn tombstone<'a>(lmdb_key: &'a [u8], value: &'a [u8]) -> (u64, &'a [u8]) {
    let index = value
        .first_chunk::<8>()
        .map_or(0, |b| u64::from_be_bytes(*b));
    if keys::has_hashed(lmdb_key) {
        (index, value.get(8..).unwrap_or_default())
    } else {
        (index, lmdb_key)
    }
}
