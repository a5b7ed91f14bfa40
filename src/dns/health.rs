//! Health rules of DNS answers: which instances are served (no critical check;
//! with `only_passing`, nothing but passing), their order (shuffled on every
//! query), and the SRV weight their aggregate status selects.

use rand::seq::SliceRandom;

use crate::structs::{
    CheckServiceNode, HEALTH_CRITICAL, HEALTH_MAINT, HEALTH_PASSING, HEALTH_WARNING,
};

/// Drops instances with a critical check (node- or service-level), and with
/// `only_passing` also those with any check that is not passing; shuffles the rest.
pub fn healthy_shuffled(nodes: Vec<CheckServiceNode>, only_passing: bool) -> Vec<CheckServiceNode> {
    let mut out: Vec<CheckServiceNode> = nodes
        .into_iter()
        .filter(|n| {
            n.checks.iter().all(|c| {
                c.status != HEALTH_CRITICAL && (!only_passing || c.status == HEALTH_PASSING)
            })
        })
        .collect();
    out.shuffle(&mut rand::rng());
    out
}

/// The aggregate status of checks, as the Go `api` computes it: maintenance
/// beats critical beats warning beats passing; an unknown status gives `""`.
fn aggregate_status<'a>(statuses: impl Iterator<Item = (&'a str, &'a str)>) -> &'static str {
    let (mut maint, mut critical, mut warning) = (false, false, false);
    for (id, status) in statuses {
        if id == "_node_maintenance" || id.starts_with("_service_maintenance:") {
            maint = true;
            continue;
        }
        match status {
            HEALTH_PASSING => {}
            HEALTH_WARNING => warning = true,
            HEALTH_CRITICAL => critical = true,
            _ => return "",
        }
    }
    if maint {
        HEALTH_MAINT
    } else if critical {
        HEALTH_CRITICAL
    } else if warning {
        HEALTH_WARNING
    } else {
        HEALTH_PASSING
    }
}

/// The SRV weight of an instance: `Weights.Passing` or `Weights.Warning` by the
/// aggregate status of its node checks and its service's checks.
pub fn srv_weight(node: &CheckServiceNode) -> u16 {
    let relevant = node
        .checks
        .iter()
        .filter(|c| c.service_name.is_empty() || c.service_name == node.service.service)
        .map(|c| (c.check_id.as_str(), c.status.as_str()));
    let weight = match aggregate_status(relevant) {
        HEALTH_PASSING => node.service.weights.passing,
        HEALTH_WARNING => node.service.weights.warning,
        HEALTH_MAINT | HEALTH_CRITICAL => 0,
        _ => 1,
    };
    u16::try_from(weight.max(0)).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{HealthCheck, Node, NodeService, Weights};

    fn instance(name: &str, statuses: &[&str]) -> CheckServiceNode {
        CheckServiceNode {
            node: Node {
                node: name.into(),
                ..Node::default()
            },
            service: NodeService {
                service: "web".into(),
                weights: Weights {
                    passing: 10,
                    warning: 3,
                },
                ..NodeService::default()
            },
            checks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| HealthCheck {
                    check_id: format!("c{i}"),
                    status: s.to_string(),
                    service_name: if i == 0 { String::new() } else { "web".into() },
                    ..HealthCheck::default()
                })
                .collect(),
        }
    }

    fn names(v: &[CheckServiceNode]) -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|c| c.node.node.clone()).collect();
        n.sort();
        n
    }

    #[test]
    fn critical_dropped_warning_kept_unless_only_passing() {
        let all = vec![
            instance("a", &["passing", "passing"]),
            instance("b", &["passing", "warning"]),
            instance("c", &["critical", "passing"]),
            instance("d", &[]),
        ];
        assert_eq!(
            names(&healthy_shuffled(all.clone(), false)),
            ["a", "b", "d"]
        );
        assert_eq!(names(&healthy_shuffled(all, true)), ["a", "d"]);
    }

    #[test]
    fn weights_follow_aggregate_status() {
        assert_eq!(srv_weight(&instance("a", &["passing"])), 10);
        assert_eq!(srv_weight(&instance("a", &["passing", "warning"])), 3);
        assert_eq!(srv_weight(&instance("a", &[])), 10);
        assert_eq!(srv_weight(&instance("a", &["odd"])), 1);
    }
}
