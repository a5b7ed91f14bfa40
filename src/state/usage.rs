//! Usage figures for `/v1/operator/usage`: how many nodes, services and service
//! instances the catalog holds, with Consul's split of mesh instances by kind and
//! its "billable" count (typical and connect-native instances, without the
//! `consul` service itself).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{ReaderRef, Result, Table};

/// The service kinds Consul reports mesh instances for, each listed even at zero.
const MESH_KINDS: [&str; 5] = [
    "api-gateway",
    "connect-proxy",
    "ingress-gateway",
    "mesh-gateway",
    "terminating-gateway",
];
const CONNECT_NATIVE: &str = "connect-native";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceUsage {
    pub nodes: usize,
    pub services: usize,
    pub service_instances: usize,
    pub connect_service_instances: BTreeMap<&'static str, usize>,
    pub billable_service_instances: usize,
}

impl ReaderRef<'_> {
    pub fn usage(&self) -> Result<(u64, ServiceUsage)> {
        let idx = self.table_index(&[Table::Nodes, Table::Services])?;
        let nodes = self.nodes()?.1.len();
        let (_, instances) = self.services()?;
        let mut connect: BTreeMap<&'static str, usize> = MESH_KINDS
            .iter()
            .chain([&CONNECT_NATIVE])
            .map(|k| (*k, 0))
            .collect();
        let mut names = BTreeSet::new();
        let mut billable = 0;
        for (_, svc) in &instances {
            names.insert(svc.service.as_str());
            if let Some(count) = MESH_KINDS
                .iter()
                .find(|k| **k == svc.kind)
                .and_then(|k| connect.get_mut(k))
            {
                *count += 1;
                continue;
            }
            if svc.connect.get("Native").and_then(|v| v.as_bool()) == Some(true) {
                *connect.entry(CONNECT_NATIVE).or_default() += 1;
            }
            if svc.service != "consul" {
                billable += 1;
            }
        }
        Ok((
            idx,
            ServiceUsage {
                nodes,
                services: names.len(),
                service_instances: instances.len(),
                connect_service_instances: connect,
                billable_service_instances: billable,
            },
        ))
    }
}
