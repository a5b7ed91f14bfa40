//! Catalog and health endpoints, and the leader's self-registration.

mod common;
use common::Agent;
use serde_json::json;

#[test]
fn the_leader_registers_itself() {
    let a = Agent::dev();
    let r = a.get("/v1/catalog/nodes");
    assert_eq!(r.status, 200);
    assert!(r.index() >= 2);
    let nodes = r.json();
    let n = &nodes[0];
    assert_eq!(n["Node"], "it-node");
    assert_eq!(n["Address"], "127.0.0.1");
    assert_eq!(n["Datacenter"], "dc1");
    assert_eq!(n["TaggedAddresses"]["lan_ipv4"], "127.0.0.1");
    assert_eq!(n["Meta"]["consul-network-segment"], "");
    assert!(n["Meta"]["consul-version"].is_string());
    assert_eq!(a.get("/v1/catalog/services").json()["consul"], json!([]));
    let checks = a.get("/v1/health/node/it-node").json();
    assert_eq!(checks[0]["CheckID"], "serfHealth");
    assert_eq!(checks[0]["Status"], "passing");
    assert_eq!(
        a.get("/v1/health/service/consul")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(a.get("/v1/catalog/datacenters").json(), json!(["dc1"]));
    assert!(
        a.get("/v1/status/leader")
            .json()
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(
        a.get("/v1/status/peers").json().as_array().unwrap().len(),
        1
    );
}

#[test]
fn register_query_and_deregister() {
    let a = Agent::dev();
    let reg = json!({
        "Node": "n2", "Address": "10.1.1.1", "NodeMeta": {"rack": "r1"},
        "Service": {"ID": "api1", "Service": "api", "Tags": ["v1", "Primary"], "Port": 8080, "Meta": {"env": "prod"}},
        "Checks": [{"CheckID": "api-alive", "Name": "alive", "Status": "critical", "ServiceID": "api1"}]
    });
    assert_eq!(a.put("/v1/catalog/register", reg.to_string()).json(), true);
    let svc = a.get("/v1/catalog/service/api?tag=primary");
    let list = svc.json();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "tags match case-insensitively"
    );
    assert_eq!(list[0]["ServiceAddress"], "");
    assert_eq!(list[0]["Address"], "10.1.1.1");
    assert_eq!(
        list[0]["ServiceWeights"],
        json!({"Passing": 1, "Warning": 1})
    );
    assert_eq!(a.get("/v1/catalog/service/api?tag=v2").json(), json!([]));
    assert_eq!(a.get("/v1/catalog/service/nothing").json(), json!([]));
    assert_eq!(
        a.get("/v1/catalog/nodes?node-meta=rack:r1")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.get("/v1/catalog/service/api?filter=ServiceMeta.env%20%3D%3D%20prod")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.get("/v1/health/service/api")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(a.get("/v1/health/service/api?passing").json(), json!([]));
    assert_eq!(
        a.get("/v1/health/service/api?passing=false")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.get("/v1/health/state/critical")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.get("/v1/health/checks/api").json()[0]["ServiceTags"],
        json!(["v1", "Primary"])
    );
    let node = a.get("/v1/catalog/node/n2").json();
    assert_eq!(node["Services"]["api1"]["Port"], 8080);
    assert_eq!(
        a.get("/v1/catalog/node/ghost").json(),
        serde_json::Value::Null
    );

    let dereg = json!({"Node": "n2", "ServiceID": "api1"});
    assert_eq!(
        a.put("/v1/catalog/deregister", dereg.to_string()).json(),
        true
    );
    assert_eq!(a.get("/v1/catalog/service/api").json(), json!([]));
    assert_eq!(
        a.get("/v1/health/state/critical").json(),
        json!([]),
        "its checks went too"
    );
    a.put("/v1/catalog/deregister", json!({"Node": "n2"}).to_string());
    assert_eq!(
        a.get("/v1/catalog/nodes").json().as_array().unwrap().len(),
        1
    );
}

#[test]
fn a_health_watch_wakes_on_its_service_only() {
    let a = Agent::dev();
    let reg = |svc: &str, status: &str| {
        json!({"Node": "n3", "Address": "10.0.0.3",
               "Service": {"Service": svc},
               "Check": {"CheckID": format!("{svc}-c"), "Name": "c", "Status": status, "ServiceID": svc}})
        .to_string()
    };
    a.put("/v1/catalog/register", reg("alpha", "passing"));
    a.put("/v1/catalog/register", reg("beta", "passing"));
    let idx = a.get("/v1/health/service/alpha").index();
    // A change to beta must not move alpha's index.
    a.put("/v1/catalog/register", reg("beta", "critical"));
    assert_eq!(a.get("/v1/health/service/alpha").index(), idx);
    a.put("/v1/catalog/register", reg("alpha", "critical"));
    assert!(a.get("/v1/health/service/alpha").index() > idx);
}

#[test]
fn operator_usage_counts_the_catalog() {
    let a = Agent::dev();
    let reg = |svc: serde_json::Value| {
        let body = json!({"Node": "n1", "Address": "10.0.0.1", "Service": svc});
        assert_eq!(a.put("/v1/catalog/register", body.to_string()).status, 200);
    };
    reg(json!({"ID": "db1", "Service": "db", "Port": 1}));
    reg(json!({"ID": "db2", "Service": "db", "Port": 2}));
    reg(
        json!({"Kind": "connect-proxy", "ID": "p", "Service": "p", "Port": 3,
               "Proxy": {"DestinationServiceName": "db"}}),
    );
    reg(json!({"ID": "n", "Service": "nat", "Port": 4, "Connect": {"Native": true}}));
    let r = a.get("/v1/operator/usage");
    assert_eq!(r.status, 200);
    assert!(r.header("X-Consul-Index").is_some());
    let dc = &r.json()["Usage"]["dc1"];
    // The agent's own node and its `consul` service count too.
    assert_eq!(dc["Nodes"], 2);
    assert_eq!(dc["Services"], 4);
    assert_eq!(dc["ServiceInstances"], 5);
    assert_eq!(dc["BillableServiceInstances"], 3);
    assert_eq!(dc["ConnectServiceInstances"]["connect-proxy"], 1);
    assert_eq!(dc["ConnectServiceInstances"]["connect-native"], 1);
    assert_eq!(dc["ConnectServiceInstances"]["mesh-gateway"], 0);
}
