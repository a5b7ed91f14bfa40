//! Session semantics: creation rules (node and checks must exist and not be critical),
//! and invalidation, which releases or deletes the keys the session holds.

use super::schema::{self, get_json, lower, put_json};
use super::{ReaderRef, Result, StateError, Table, Writer};
use crate::structs::{HEALTH_CRITICAL, SESSION_BEHAVIOR_DELETE, SESSION_BEHAVIOR_RELEASE, Session};

impl ReaderRef<'_> {
    pub fn session(&self, id: &str) -> Result<(u64, Option<Session>)> {
        let idx = self.table_index(&[Table::Sessions])?;
        Ok((
            idx,
            get_json(&self.db.sessions, self.txn, &schema::key(&[id]))?,
        ))
    }

    pub fn sessions(&self) -> Result<(u64, Vec<Session>)> {
        let idx = self.table_index(&[Table::Sessions])?;
        let sessions =
            schema::scan_json_by(&self.db.sessions, self.txn, b"", |s: &Session| s.id.clone())?;
        Ok((idx, sessions))
    }

    pub fn node_sessions(&self, node: &str) -> Result<(u64, Vec<Session>)> {
        let (idx, all) = self.sessions()?;
        let node = lower(node);
        Ok((
            idx,
            all.into_iter().filter(|s| lower(&s.node) == node).collect(),
        ))
    }
}

impl Writer<'_, '_> {
    /// Creates a session after checking what it depends on.
    pub fn session_create(&mut self, mut session: Session) -> Result<Session> {
        if session.behavior.is_empty() {
            session.behavior = SESSION_BEHAVIOR_RELEASE.to_string();
        }
        if session.behavior != SESSION_BEHAVIOR_RELEASE
            && session.behavior != SESSION_BEHAVIOR_DELETE
        {
            return Err(StateError::rejected(format!(
                "Invalid session behavior: {}",
                session.behavior
            )));
        }
        let Some(node) = self.reader().node(&session.node)? else {
            return Err(StateError::rejected(format!(
                "Missing node registration: {}",
                session.node
            )));
        };
        session.node = node.node.clone();
        for check_id in session.check_ids() {
            match self.reader().check(&node.node, &check_id)? {
                None => {
                    return Err(StateError::rejected(format!(
                        "Missing check '{check_id}' registration"
                    )));
                }
                Some(c) if c.status == HEALTH_CRITICAL => {
                    return Err(StateError::rejected(format!(
                        "Check '{check_id}' is in {HEALTH_CRITICAL} state"
                    )));
                }
                Some(_) => {}
            }
        }
        session.create_index = self.idx;
        session.modify_index = self.idx;
        put_json(
            &self.db.sessions,
            self.txn,
            &schema::key(&[&session.id]),
            &session,
        )?;
        let node_key = lower(&node.node);
        for check_id in session.check_ids() {
            self.db.session_checks.put(
                self.txn,
                &schema::key(&[&node_key, &check_id, &session.id]),
                session.id.as_bytes(),
            )?;
        }
        self.bump(Table::Sessions)?;
        Ok(session)
    }

    /// Ends a session: its locks are released (or keys deleted) with a lock delay.
    /// Destroying an unknown session is a no-op.
    pub fn session_destroy(&mut self, id: &str) -> Result<()> {
        let Some(session) = get_json::<Session>(&self.db.sessions, self.txn, &schema::key(&[id]))?
        else {
            return Ok(());
        };
        self.kv_release_session(&session)?;
        let node_key = lower(&session.node);
        for check_id in session.check_ids() {
            self.db
                .session_checks
                .delete(self.txn, &schema::key(&[&node_key, &check_id, id]))?;
        }
        self.db.sessions.delete(self.txn, &schema::key(&[id]))?;
        self.bump(Table::Sessions)?;
        Ok(())
    }

    pub(crate) fn invalidate_sessions_of_check(
        &mut self,
        node: &str,
        check_id: &str,
    ) -> Result<()> {
        let prefix = schema::prefix(&[&lower(node), check_id]);
        let mut ids = Vec::new();
        for item in schema::iter_prefix(&self.db.session_checks, self.txn, &prefix)? {
            let (_, session) = item?;
            ids.push(String::from_utf8_lossy(session).into_owned());
        }
        for id in ids {
            self.session_destroy(&id)?;
        }
        Ok(())
    }
}
