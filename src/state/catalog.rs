//! Catalog semantics: nodes, service instances and health checks, with Consul's
//! index rules (a per-service index so a health watch on one service is not woken by
//! another) and the session invalidation that check and node changes cause.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::keys;
use super::schema::{self, get_json, lower, put_json};
use super::{ReaderRef, Result, StateError, Table, Writer};
use crate::structs::{CheckServiceNode, HEALTH_CRITICAL, HealthCheck, Node, NodeService};

/// A node with its services, or `None` for an unknown node.
pub type NodeWithServices = Option<(Node, Vec<NodeService>)>;

/// The name of a service's own index in the `index` table.
fn service_index_name(service: &str) -> Vec<u8> {
    let mut name = b"service.".to_vec();
    keys::push_part(&mut name, lower(service).as_bytes());
    name
}

/// A `services_by_name` row: the instance's node and service ID, which the key
/// holds only in encoded form.
pub(super) fn instance_ref(node_key: &[u8], id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + node_key.len() + id.len());
    out.extend_from_slice(&(node_key.len() as u32).to_be_bytes());
    out.extend_from_slice(node_key);
    out.extend_from_slice(id);
    out
}

fn parse_instance_ref(row: &[u8]) -> Option<(String, String)> {
    let (len, rest) = row.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    let node = rest.get(..len)?;
    let id = rest.get(len..)?;
    Some((
        String::from_utf8_lossy(node).into_owned(),
        String::from_utf8_lossy(id).into_owned(),
    ))
}

impl ReaderRef<'_> {
    pub fn node(&self, name: &str) -> Result<Option<Node>> {
        get_json(&self.db.nodes, self.txn, &schema::key(&[&lower(name)]))
    }

    pub fn nodes(&self) -> Result<(u64, Vec<Node>)> {
        let idx = self.table_index(&[Table::Nodes])?;
        let nodes = schema::scan_json_by(&self.db.nodes, self.txn, b"", |n: &Node| lower(&n.node))?;
        Ok((idx, nodes))
    }

    /// Services on one node, in ID order.
    pub fn services_of_node(&self, node: &str) -> Result<Vec<NodeService>> {
        schema::scan_json_by(
            &self.db.services,
            self.txn,
            &schema::prefix(&[&lower(node)]),
            |s: &NodeService| s.id.clone(),
        )
    }

    pub fn node_service(&self, node: &str, id: &str) -> Result<Option<NodeService>> {
        get_json(
            &self.db.services,
            self.txn,
            &schema::key(&[&lower(node), id]),
        )
    }

    /// `(node, services)` for `/v1/catalog/node/:node`; `None` for an unknown node.
    pub fn node_services(&self, node: &str) -> Result<(u64, NodeWithServices)> {
        let idx = self.table_index(&[Table::Nodes, Table::Services])?;
        let Some(n) = self.node(node)? else {
            return Ok((idx, None));
        };
        let services = self.services_of_node(node)?;
        Ok((idx, Some((n, services))))
    }

    /// Every service name with the union of its instances' tags.
    pub fn services(&self) -> Result<(u64, Vec<(Node, NodeService)>)> {
        let idx = self.table_index(&[Table::Services])?;
        let mut out = Vec::new();
        for n in self.nodes()?.1 {
            for svc in self.services_of_node(&n.node)? {
                out.push((n.clone(), svc));
            }
        }
        Ok((idx, out))
    }

    /// The index a query on one service reports: the service's own index when it
    /// exists, else the max of the tables the answer depends on.
    fn service_index(&self, service: &str, exists: bool, with_checks: bool) -> Result<u64> {
        if exists {
            let idx = self.named_index(service_index_name(service))?;
            if idx > 0 {
                return Ok(idx);
            }
        }
        if with_checks {
            self.table_index(&[Table::Nodes, Table::Services, Table::Checks])
        } else {
            self.table_index(&[Table::Nodes, Table::Services])
        }
    }

    /// Instances of a service with their nodes.
    pub fn service_instances(&self, service: &str) -> Result<(u64, Vec<(Node, NodeService)>)> {
        let mut out = Vec::new();
        let mut last_node: Option<Node> = None;
        let mut hashed = false;
        for item in schema::iter_prefix(
            &self.db.services_by_name,
            self.txn,
            &schema::prefix(&[&lower(service)]),
        )? {
            let (k, v) = item?;
            let Some((node, id)) = parse_instance_ref(v) else {
                continue;
            };
            hashed |= keys::has_hashed(k);
            // Instances are grouped by node in the index: decode each node once.
            if !last_node
                .as_ref()
                .is_some_and(|n| n.node.eq_ignore_ascii_case(&node))
            {
                last_node = self.node(&node)?;
            }
            if let (Some(n), Some(s)) = (&last_node, self.node_service(&node, &id)?) {
                out.push((n.clone(), s));
            }
        }
        if hashed {
            out.sort_by_cached_key(|(n, s)| (lower(&n.node), s.id.clone()));
        }
        let idx = self.service_index(service, !out.is_empty(), false)?;
        Ok((idx, out))
    }

    /// Instances that speak Connect for `service`: its proxies (`connect-proxy` with
    /// that destination) and its Connect-native instances.
    pub fn connect_instances(&self, service: &str) -> Result<(u64, Vec<(Node, NodeService)>)> {
        let idx = self.table_index(&[Table::Nodes, Table::Services])?;
        let (_, all) = self.services()?;
        let out = all
            .into_iter()
            .filter(|(_, s)| {
                let proxy_for = s.kind == "connect-proxy"
                    && s.proxy
                        .get("DestinationServiceName")
                        .and_then(|d| d.as_str())
                        .is_some_and(|d| d.eq_ignore_ascii_case(service));
                let native = s.service.eq_ignore_ascii_case(service)
                    && s.connect.get("Native").and_then(|n| n.as_bool()) == Some(true);
                proxy_for || native
            })
            .collect();
        Ok((idx, out))
    }

    /// `check_service_nodes` for the Connect-capable instances of `service`.
    pub fn connect_check_service_nodes(
        &self,
        service: &str,
    ) -> Result<(u64, Vec<CheckServiceNode>)> {
        let (_, instances) = self.connect_instances(service)?;
        let idx = self.table_index(&[Table::Nodes, Table::Services, Table::Checks])?;
        Ok((idx, self.with_checks(instances)?))
    }

    /// Joins each instance with its node's checks and its own.
    fn with_checks(&self, instances: Vec<(Node, NodeService)>) -> Result<Vec<CheckServiceNode>> {
        // Many instances share a node: read each node's checks once.
        let mut by_node: HashMap<String, Vec<HealthCheck>> = HashMap::new();
        let mut out = Vec::with_capacity(instances.len());
        for (node, svc) in instances {
            let node_checks = match by_node.entry(node.node.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.node_checks(&node.node)?),
            };
            let checks = node_checks
                .iter()
                .filter(|c| c.service_id.is_empty() || c.service_id == svc.id)
                .cloned()
                .collect();
            out.push(CheckServiceNode {
                node,
                service: svc,
                checks,
            });
        }
        Ok(out)
    }

    pub fn node_checks(&self, node: &str) -> Result<Vec<HealthCheck>> {
        schema::scan_json_by(
            &self.db.checks,
            self.txn,
            &schema::prefix(&[&lower(node)]),
            |c: &HealthCheck| c.check_id.clone(),
        )
    }

    pub fn check(&self, node: &str, id: &str) -> Result<Option<HealthCheck>> {
        get_json(&self.db.checks, self.txn, &schema::key(&[&lower(node), id]))
    }

    /// `/v1/health/node/:node`.
    pub fn checks_of_node(&self, node: &str) -> Result<(u64, Vec<HealthCheck>)> {
        let idx = self.table_index(&[Table::Checks])?;
        Ok((idx, self.node_checks(node)?))
    }

    /// Every check, for `/v1/health/state/:state` and `/v1/health/checks/:service`.
    pub fn all_checks(&self) -> Result<(u64, Vec<HealthCheck>)> {
        let idx = self.table_index(&[Table::Checks])?;
        let checks = schema::scan_json_by(&self.db.checks, self.txn, b"", |c: &HealthCheck| {
            (lower(&c.node), c.check_id.clone())
        })?;
        Ok((idx, checks))
    }

    /// `/v1/health/service/:name`: each instance with its node's checks and its own.
    pub fn check_service_nodes(&self, service: &str) -> Result<(u64, Vec<CheckServiceNode>)> {
        let (_, instances) = self.service_instances(service)?;
        let out = self.with_checks(instances)?;
        let idx = self.service_index(service, !out.is_empty(), true)?;
        Ok((idx, out))
    }
}

/// Equality ignoring Raft indexes (an unchanged registration is a no-op).
fn same_node(a: &Node, b: &Node) -> bool {
    a.id == b.id
        && a.node == b.node
        && a.address == b.address
        && a.datacenter == b.datacenter
        && a.tagged_addresses == b.tagged_addresses
        && a.meta == b.meta
}

fn same_service(a: &NodeService, b: &NodeService) -> bool {
    let mut a = a.clone();
    a.create_index = b.create_index;
    a.modify_index = b.modify_index;
    &a == b
}

fn same_check(a: &HealthCheck, b: &HealthCheck) -> bool {
    let mut a = a.clone();
    a.create_index = b.create_index;
    a.modify_index = b.modify_index;
    &a == b
}

impl Writer<'_, '_> {
    fn bump_service(&mut self, service: &str) -> Result<()> {
        schema::set_index(
            &self.db.index,
            self.txn,
            &service_index_name(service),
            self.idx,
        )?;
        self.touched.services.insert(lower(service));
        Ok(())
    }

    /// A node-level change (address, node check) changes the health of every service
    /// on it.
    fn bump_services_of_node(&mut self, node: &str) -> Result<()> {
        let names: Vec<String> = self
            .reader()
            .services_of_node(node)?
            .into_iter()
            .map(|s| s.service)
            .collect();
        for name in names {
            self.bump_service(&name)?;
        }
        Ok(())
    }

    /// Creates or updates a node. Returns the node as stored.
    pub fn ensure_node(&mut self, mut node: Node) -> Result<Node> {
        let key = lower(&node.node);
        let row_key = schema::key(&[&key]);
        let existing: Option<Node> = get_json(&self.db.nodes, self.txn, &row_key)?;
        if let Some(old) = &existing {
            if !old.id.is_empty() && !node.id.is_empty() && old.id != node.id {
                // Consul lets a node keep its name only with the same ID; a different
                // ID under the same name is a different machine.
                return Err(StateError::rejected(format!(
                    "Error updating node: node name {:?} is reserved by node ID {:?}",
                    node.node, old.id
                )));
            }
            if node.id.is_empty() {
                node.id = old.id.clone();
            }
            if same_node(&node, old) {
                return Ok(old.clone());
            }
        }
        node.create_index = existing.as_ref().map_or(self.idx, |n| n.create_index);
        node.modify_index = self.idx;
        put_json(&self.db.nodes, self.txn, &row_key, &node)?;
        self.bump(Table::Nodes)?;
        self.touched.nodes.insert(key);
        self.bump_services_of_node(&node.node)?;
        Ok(node)
    }

    /// Creates or updates a service instance on an existing node.
    pub fn ensure_service(&mut self, node: &str, mut svc: NodeService) -> Result<NodeService> {
        let Some(n) = self.reader().node(node)? else {
            return Err(StateError::rejected(format!(
                "Failed to set service: node {node:?} does not exist"
            )));
        };
        let node_key = lower(&n.node);
        let key = schema::key(&[&node_key, &svc.id]);
        let existing: Option<NodeService> = get_json(&self.db.services, self.txn, &key)?;
        if let Some(old) = &existing {
            if same_service(&svc, old) {
                return Ok(old.clone());
            }
            if lower(&old.service) != lower(&svc.service) {
                self.db.services_by_name.delete(
                    self.txn,
                    &schema::key(&[&lower(&old.service), &node_key, &old.id]),
                )?;
                self.bump_service(&old.service)?;
            }
        }
        svc.create_index = existing.as_ref().map_or(self.idx, |s| s.create_index);
        svc.modify_index = self.idx;
        put_json(&self.db.services, self.txn, &key, &svc)?;
        self.db.services_by_name.put(
            self.txn,
            &schema::key(&[&lower(&svc.service), &node_key, &svc.id]),
            &instance_ref(node_key.as_bytes(), svc.id.as_bytes()),
        )?;
        self.bump(Table::Services)?;
        self.bump_service(&svc.service)?;
        self.touched.nodes.insert(node_key);
        Ok(svc)
    }

    /// Creates or updates a check. A check turning critical invalidates the sessions
    /// that depend on it.
    pub fn ensure_check(&mut self, mut check: HealthCheck) -> Result<HealthCheck> {
        let Some(n) = self.reader().node(&check.node)? else {
            return Err(StateError::rejected("Missing node registration"));
        };
        check.node = n.node.clone();
        let node_key = lower(&n.node);
        if !check.service_id.is_empty() {
            let Some(svc) = self.reader().node_service(&n.node, &check.service_id)? else {
                return Err(StateError::rejected(format!(
                    "Missing service registration for check {:?}",
                    check.check_id
                )));
            };
            check.service_name = svc.service.clone();
            check.service_tags = svc.tags.clone();
        } else {
            check.service_name.clear();
            check.service_tags.clear();
        }
        let key = schema::key(&[&node_key, &check.check_id]);
        let existing: Option<HealthCheck> = get_json(&self.db.checks, self.txn, &key)?;
        if let Some(old) = &existing
            && same_check(&check, old)
        {
            return Ok(old.clone());
        }
        check.create_index = existing.as_ref().map_or(self.idx, |c| c.create_index);
        check.modify_index = self.idx;
        put_json(&self.db.checks, self.txn, &key, &check)?;
        self.bump(Table::Checks)?;
        self.touched.nodes.insert(node_key);
        if check.service_id.is_empty() {
            self.bump_services_of_node(&check.node)?;
        } else {
            let name = check.service_name.clone();
            self.bump_service(&name)?;
        }
        if check.status == HEALTH_CRITICAL {
            self.invalidate_sessions_of_check(&check.node, &check.check_id)?;
        }
        Ok(check)
    }

    /// Removes a check (sessions depending on it are invalidated).
    pub fn delete_check(&mut self, node: &str, id: &str) -> Result<()> {
        let node_key = lower(node);
        let key = schema::key(&[&node_key, id]);
        let Some(old) = get_json::<HealthCheck>(&self.db.checks, self.txn, &key)? else {
            return Ok(());
        };
        self.invalidate_sessions_of_check(node, id)?;
        self.db.checks.delete(self.txn, &key)?;
        self.bump(Table::Checks)?;
        self.touched.nodes.insert(node_key);
        if old.service_id.is_empty() {
            self.bump_services_of_node(node)?;
        } else {
            self.bump_service(&old.service_name)?;
        }
        Ok(())
    }

    /// Removes a service instance and its checks.
    pub fn delete_service(&mut self, node: &str, id: &str) -> Result<()> {
        let node_key = lower(node);
        let key = schema::key(&[&node_key, id]);
        let Some(old) = get_json::<NodeService>(&self.db.services, self.txn, &key)? else {
            return Ok(());
        };
        let checks: Vec<HealthCheck> = self.reader().node_checks(node)?;
        for c in checks.iter().filter(|c| c.service_id == id) {
            self.delete_check(node, &c.check_id)?;
        }
        self.db.services.delete(self.txn, &key)?;
        self.db.services_by_name.delete(
            self.txn,
            &schema::key(&[&lower(&old.service), &node_key, id]),
        )?;
        self.bump(Table::Services)?;
        self.bump_service(&old.service)?;
        self.touched.nodes.insert(node_key);
        Ok(())
    }

    /// Removes a node with its services, checks and sessions.
    pub fn delete_node(&mut self, node: &str) -> Result<()> {
        let node_key = lower(node);
        if self.reader().node(node)?.is_none() {
            return Ok(());
        }
        let sessions: Vec<String> = self
            .reader()
            .sessions()?
            .1
            .into_iter()
            .filter(|s| lower(&s.node) == node_key)
            .map(|s| s.id)
            .collect();
        for id in sessions {
            self.session_destroy(&id)?;
        }
        for svc in self.reader().services_of_node(node)? {
            self.delete_service(node, &svc.id)?;
        }
        for c in self.reader().node_checks(node)? {
            self.delete_check(node, &c.check_id)?;
        }
        for k in schema::scan_keys(
            &self.db.coordinates,
            self.txn,
            &schema::prefix(&[&node_key]),
        )? {
            self.db.coordinates.delete(self.txn, &k)?;
        }
        self.db.nodes.delete(self.txn, &schema::key(&[&node_key]))?;
        self.bump(Table::Nodes)?;
        self.touched.nodes.insert(node_key);
        Ok(())
    }
}
