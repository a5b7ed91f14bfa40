//! The DNS server's view of the agent configuration: domains, TTLs (with the
//! `service_ttl` wildcard rules), limits and recursors, derived once at start.

use std::time::Duration;

use super::name::Domains;
use crate::config::{DnsConfig, RuntimeConfig, SoaConfig};

#[derive(Debug, Clone)]
pub struct Settings {
    pub domains: Domains,
    pub datacenter: String,
    pub node_ttl: u32,
    /// Exact `service_ttl` keys.
    ttl_exact: Vec<(String, u32)>,
    /// `service_ttl` keys ending in `*`, without the star.
    ttl_prefix: Vec<(String, u32)>,
    pub udp_answer_limit: usize,
    pub a_record_limit: usize,
    pub enable_truncate: bool,
    pub only_passing: bool,
    pub node_meta_txt: bool,
    pub allow_stale: bool,
    pub max_stale: Duration,
    pub soa: SoaConfig,
    pub recursors: Vec<String>,
    pub recursor_timeout: Duration,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Settings {
    pub fn new(config: &RuntimeConfig) -> Settings {
        let dns: &DnsConfig = &config.dns_config;
        let mut ttl_exact = Vec::new();
        let mut ttl_prefix = Vec::new();
        for (key, ttl) in &dns.service_ttl {
            match key.strip_suffix('*') {
                Some(prefix) => ttl_prefix.push((prefix.to_string(), secs(*ttl))),
                None => ttl_exact.push((key.clone(), secs(*ttl))),
            }
        }
        Settings {
            domains: Domains::new(&config.domain, config.alt_domain.as_deref()),
            datacenter: config.datacenter.to_ascii_lowercase(),
            node_ttl: secs(dns.node_ttl),
            ttl_exact,
            ttl_prefix,
            udp_answer_limit: dns.udp_answer_limit as usize,
            a_record_limit: dns.a_record_limit as usize,
            enable_truncate: dns.enable_truncate,
            only_passing: dns.only_passing,
            node_meta_txt: dns.enable_additional_node_meta_txt,
            allow_stale: dns.allow_stale,
            max_stale: dns.max_stale,
            soa: dns.soa,
            recursors: config.recursors.clone(),
            recursor_timeout: dns.recursor_timeout,
        }
    }

    /// The TTL of a service's records: an exact key, else the longest matching
    /// prefix key (`"web*"`, `"*"`), else 0.
    pub fn service_ttl(&self, service: &str) -> u32 {
        if let Some((_, ttl)) = self.ttl_exact.iter().find(|(k, _)| k == service) {
            return *ttl;
        }
        self.ttl_prefix
            .iter()
            .filter(|(p, _)| service.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(0, |(_, ttl)| *ttl)
    }

    pub fn recursion_available(&self) -> bool {
        !self.recursors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ttl_rules() {
        let flags = crate::config::AgentFlags {
            dev: Some(true),
            hcl: vec![
                r#"dns_config { service_ttl { "web" = "5s", "*" = "1s", "we*" = "2s", "web-*" = "3s" } }"#
                    .into(),
            ],
            ..Default::default()
        };
        let s = Settings::new(&crate::config::load(&flags).expect("config"));
        assert_eq!(s.service_ttl("web"), 5);
        assert_eq!(s.service_ttl("web-api"), 3);
        assert_eq!(s.service_ttl("wex"), 2);
        assert_eq!(s.service_ttl("db"), 1);
        let plain = crate::config::AgentFlags {
            dev: Some(true),
            ..Default::default()
        };
        let s = Settings::new(&crate::config::load(&plain).expect("config"));
        assert_eq!(s.service_ttl("db"), 0);
        assert_eq!(s.domains.primary, "consul.");
    }
}
