//! Answers that real Consul clients and tools rely on, checked against the real
//! binary (issue 18): the index page, a body's `Datacenter`, `/v1/agent/self`
//! `Stats`, Prometheus output switched off, operator usage metadata, nil maps in
//! the catalog, an unnamed leaf certificate, the keyring without encryption,
//! force-leave of a live member, and `-dev` scratch directories of killed agents.

mod common;
use common::{Agent, Resp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dev_with(extra: &[&str]) -> Agent {
    let mut args = vec!["-dev".to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    Agent::start(args, None)
}

/// A GET that does not follow redirects.
fn get_raw(a: &Agent, path: &str) -> Resp {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(format!("{}{path}", a.http)).send().unwrap();
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().unwrap().to_vec(),
    }
}

#[test]
fn index_page_with_the_ui_off_and_on() {
    let off = dev_with(&["-ui=false"]);
    let r = get_raw(&off, "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart."
    );
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    // Other paths outside /v1/ are still unknown.
    let r = get_raw(&off, "/nothing-here");
    assert_eq!(r.status, 404);

    // -dev turns the UI on; the redirect goes to its content path.
    let on = dev_with(&["-ui-content-path=/consul-ui/"]);
    let r = get_raw(&on, "/");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location").as_deref(), Some("/consul-ui/"));
}

#[test]
fn a_body_datacenter_routes_the_request() {
    let a = Agent::dev();
    let no_path = (500, "No path to datacenter".to_string());
    let reg = json!({"Node": "foo", "Address": "10.1.10.11", "Datacenter": "dc2"});
    let r = a.put("/v1/catalog/register", reg.to_string());
    assert_eq!((r.status, r.text()), no_path);
    let nodes = a.get("/v1/catalog/nodes").json();
    assert!(
        nodes.as_array().unwrap().iter().all(|n| n["Node"] != "foo"),
        "{nodes}"
    );
    // Keys match the way Consul decodes bodies: case-insensitively.
    let r = a.put(
        "/v1/catalog/register",
        json!({"node": "foo", "address": "10.1.10.11", "datacenter": "dc2"}).to_string(),
    );
    assert_eq!((r.status, r.text()), no_path);

    // Its own datacenter, named or not, is served here.
    let r = a.put(
        "/v1/catalog/register",
        json!({"Node": "foo", "Address": "10.1.10.11", "Datacenter": "dc1"}).to_string(),
    );
    assert_eq!((r.status, r.text().trim()), (200, "true"));
    let r = a.put(
        "/v1/catalog/deregister",
        json!({"Node": "foo", "Datacenter": "dc2"}).to_string(),
    );
    assert_eq!((r.status, r.text()), no_path);
    let node = a.get("/v1/catalog/node/foo").json();
    assert_eq!(node["Node"]["Node"], "foo");
    assert_eq!(node["Node"]["Datacenter"], "dc1");

    // `?dc=` wins over the body.
    let r = a.put(
        "/v1/catalog/register?dc=dc1",
        json!({"Node": "bar", "Address": "10.1.10.12", "Datacenter": "dc2"}).to_string(),
    );
    assert_eq!((r.status, r.text().trim()), (200, "true"));
    assert_eq!(
        a.get("/v1/catalog/node/bar").json()["Node"]["Datacenter"],
        "dc1"
    );

    let r = a.put(
        "/v1/coordinate/update",
        json!({"Node": "foo", "Datacenter": "dc2",
               "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                         "Error": 1.5, "Adjustment": 0.0, "Height": 1e-5}})
        .to_string(),
    );
    assert_eq!((r.status, r.text()), no_path);
}

#[test]
fn agent_self_stats_have_consuls_sections() {
    let a = Agent::dev();
    let me = a.get("/v1/agent/self").json();
    assert!(me.get("xDS").is_none(), "no xDS server, no xDS key: {me}");
    let stats = &me["Stats"];
    let leader = a.get("/v1/status/leader").json();
    let consul = &stats["consul"];
    assert_eq!(consul["server"], "true");
    assert_eq!(consul["leader"], "true");
    assert_eq!(consul["leader_addr"], leader);
    assert_eq!(consul["bootstrap"], "true", "-dev bootstraps");
    assert_eq!(consul["known_datacenters"], "1");
    assert_eq!(consul["acl"], "disabled");

    let raft = &stats["raft"];
    assert_eq!(raft["state"], "Leader");
    assert_eq!(raft["num_peers"], "0");
    assert_eq!(raft["last_contact"], "0");
    let number = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    assert!(number(&raft["term"]) >= 1);
    assert!(number(&raft["applied_index"]) >= 1);
    assert!(number(&raft["commit_index"]) >= number(&raft["applied_index"]));
    assert!(number(&raft["last_log_index"]) >= number(&raft["applied_index"]));
    let config = raft["latest_configuration"].as_str().unwrap();
    assert!(
        config.starts_with("[{Suffrage:Voter ID:") && config.contains(leader.as_str().unwrap()),
        "{config}"
    );

    for pool in ["serf_lan", "serf_wan"] {
        let serf = &stats[pool];
        assert_eq!(serf["members"], "1", "{pool}: {serf}");
        assert_eq!(serf["failed"], "0");
        assert_eq!(serf["left"], "0");
        assert_eq!(serf["health_score"], "0");
        assert_eq!(serf["encrypted"], "false");
    }
    assert_eq!(stats["agent"]["services"], "0");
    assert!(number(&stats["runtime"]["cpu_count"]) >= 1);
}

#[test]
fn prometheus_output_switched_off_answers_as_consul() {
    let a = Agent::dev();
    let r = a.get("/v1/agent/metrics?format=prometheus");
    // Consul's handler returns a CodeWithPayloadError and no object: only the
    // reason header is written, the status stays 200 and the body empty.
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-Consul-Reason").as_deref(),
        Some("Prometheus is not enabled since its retention time is not positive")
    );
    assert_eq!(r.header("Content-Type"), None);
    assert!(r.body.is_empty(), "{}", r.text());
}

#[test]
fn operator_usage_carries_the_query_meta() {
    let a = Agent::dev();
    let r = a.get("/v1/operator/usage");
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["Index"], json!(r.index()));
    assert_eq!(body["KnownLeader"], true);
    assert_eq!(body["LastContact"], 0);
    assert_eq!(body["ConsistencyLevel"], "leader");
    assert_eq!(body["NotModified"], false);
    assert_eq!(body["Backend"], 0);
    assert_eq!(body["ResultsFilteredByACLs"], false);
    assert_eq!(body["Usage"]["dc1"]["Nodes"], 1, "{body}");
    let stale = a.get("/v1/operator/usage?stale").json();
    assert_eq!(stale["ConsistencyLevel"], "stale");
}

#[test]
fn the_catalog_keeps_nil_maps_nil() {
    let a = Agent::dev();
    let reg = json!({"Node": "n1", "Address": "10.0.0.1",
                     "Service": {"Service": "web", "Port": 80, "Meta": null}});
    assert_eq!(a.put("/v1/catalog/register", reg.to_string()).status, 200);
    let reg = json!({"Node": "n2", "Address": "10.0.0.2", "NodeMeta": {}, "TaggedAddresses": {},
                     "Service": {"Service": "web", "Port": 80, "Meta": {}, "Tags": null}});
    assert_eq!(a.put("/v1/catalog/register", reg.to_string()).status, 200);
    let proxy = json!({"Node": "n1", "Address": "10.0.0.1",
                       "Service": {"Kind": "connect-proxy", "Service": "web-proxy", "Port": 21000,
                                   "Proxy": {"DestinationServiceName": "web"}}});
    assert_eq!(a.put("/v1/catalog/register", proxy.to_string()).status, 200);

    let by_node = |list: &Value, node: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["Node"] == node || e["Node"]["Node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("{node} not in {list}"))
    };
    let catalog = a.get("/v1/catalog/service/web").json();
    let (n1, n2) = (by_node(&catalog, "n1"), by_node(&catalog, "n2"));
    assert_eq!(n1["ServiceMeta"], Value::Null);
    assert_eq!(n1["NodeMeta"], Value::Null);
    assert_eq!(n1["TaggedAddresses"], Value::Null);
    assert_eq!(n1["ServiceTags"], json!([]));
    assert_eq!(n1["ServiceWeights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(n2["ServiceMeta"], json!({}));
    assert_eq!(n2["NodeMeta"], json!({}));
    assert_eq!(n2["TaggedAddresses"], json!({}));
    assert_eq!(n2["ServiceTags"], json!([]));

    let health = a.get("/v1/health/service/web").json();
    let (n1, n2) = (by_node(&health, "n1"), by_node(&health, "n2"));
    assert_eq!(n1["Service"]["Meta"], Value::Null);
    assert_eq!(n1["Node"]["Meta"], Value::Null);
    assert_eq!(n1["Node"]["TaggedAddresses"], Value::Null);
    assert_eq!(n1["Service"]["Tags"], json!([]));
    assert_eq!(n2["Service"]["Meta"], json!({}));

    let connect = a.get("/v1/health/connect/web").json();
    assert_eq!(by_node(&connect, "n1")["Service"]["Meta"], Value::Null);
    let node = a.get("/v1/catalog/node/n1").json();
    assert_eq!(node["Services"]["web"]["Meta"], Value::Null);
    assert_eq!(node["Node"]["Meta"], Value::Null);

    // The agent endpoints turn a missing Meta into {}.
    let svc = json!({"Name": "api", "Port": 81});
    assert_eq!(
        a.put("/v1/agent/service/register", svc.to_string()).status,
        200
    );
    assert_eq!(a.get("/v1/agent/services").json()["api"]["Meta"], json!({}));
}

#[test]
fn an_unnamed_leaf_certificate_is_refused_as_consul_does() {
    let a = Agent::dev();
    let r = a.get("/v1/agent/connect/ca/leaf/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "URI must be either service, agent, server, or kind")
    );
}

#[test]
fn the_keyring_without_encryption_says_so() {
    let a = Agent::dev();
    let r = a.get("/v1/operator/keyring");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "4 errors occurred:\n\
         \t* WAN error: 1/1 nodes reported failure\n\
         \t* it-node.dc1: Keyring is empty (encryption not enabled)\n\
         \t* dc1 (LAN) error: 1/1 nodes reported failure\n\
         \t* it-node: Keyring is empty (encryption not enabled)\n\n"
    );
    let key = json!({"Key": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="}).to_string();
    let r = a.put("/v1/operator/keyring", key);
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("\t* it-node: No keyring to modify (encryption not enabled)\n"),
        "{}",
        r.text()
    );
}

fn member_status(a: &Agent, name: &str) -> Option<u64> {
    let members = a.try_get("/v1/agent/members")?.json();
    members
        .as_array()?
        .iter()
        .find(|m| m["Name"] == name)
        .and_then(|m| m["Status"].as_u64())
}

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

#[test]
fn force_leave_of_a_live_member() {
    let s1 = Agent::start_at(
        "127.0.118.1",
        "s1",
        vec!["-server".into(), "-bootstrap-expect=1".into()],
        Agent::scratch("parity-s1"),
    );
    let c1 = Agent::start_at(
        "127.0.118.2",
        "c1",
        vec!["-retry-join=127.0.118.1".into()],
        Agent::scratch("parity-c1"),
    );
    eventually("c1 alive in s1's pool", 30, || {
        member_status(&s1, "c1") == Some(1)
    });
    eventually("s1 alive in c1's pool", 30, || {
        member_status(&c1, "s1") == Some(1)
    });

    // A member that cannot answer stays leaving.
    c1.signal(SIGSTOP);
    let r = s1.put("/v1/agent/force-leave/c1", "");
    let seen = member_status(&s1, "c1");
    c1.signal(SIGCONT);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(seen, Some(2), "c1 leaving after force-leave");
    // Once it runs again it refutes the intent.
    eventually("c1 alive again", 30, || member_status(&s1, "c1") == Some(1));

    // With -prune it goes from the list at once.
    let r = s1.put("/v1/agent/force-leave/c1?prune", "");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("c1 pruned", 10, || member_status(&s1, "c1").is_none());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(member_status(&s1, "c1"), None, "c1 stays pruned");

    // A client agent's Stats.
    eventually("c1 knows its server", 30, || {
        c1.get("/v1/agent/self").json()["Stats"]["consul"]["known_servers"] == "1"
    });
    let stats = &c1.get("/v1/agent/self").json()["Stats"];
    assert_eq!(stats["consul"]["server"], "false");
    assert!(stats.get("raft").is_none() && stats.get("serf_wan").is_none());
    assert_eq!(stats["serf_lan"]["members"], "2");
}

fn scratch_dirs(tmp: &std::path::Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("concord-dev-"))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_killed_dev_agent_leaves_nothing_behind() {
    let tmp = Agent::scratch("parity-tmp");
    let tmp_str = tmp.display().to_string();
    let env = [("TMPDIR", tmp_str.as_str())];
    let mut first = Agent::start_env(vec!["-dev".into()], None, &env);
    let before = scratch_dirs(&tmp);
    assert_eq!(before.len(), 1, "{before:?}");
    first.kill9();

    let mut second = Agent::start_env(vec!["-dev".into()], None, &env);
    let now = scratch_dirs(&tmp);
    assert_eq!(
        now.len(),
        1,
        "the killed agent's directory is gone: {now:?}"
    );
    assert_ne!(now, before);
    second.interrupt();
    assert_eq!(scratch_dirs(&tmp), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&tmp);
}
