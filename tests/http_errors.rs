//! Consul's answers to bad input and unknown routes; the server keeps serving.

mod common;
use common::Agent;

#[test]
fn unknown_paths_and_methods() {
    let a = Agent::dev();
    let r = a.get("/v1/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Invalid URL path: not a recognized HTTP API endpoint\n"
    );
    let r = a.get("/favicon.ico");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("ensure the path starts with '/v1/'"));
    let r = a.request("PATCH", "/v1/kv/x");
    assert_eq!(r.status, 405);
    assert_eq!(r.text(), "method PATCH not allowed");
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET,PUT,DELETE"));
    let r = a.request("OPTIONS", "/v1/status/leader");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET"));
    assert_eq!(
        a.get("/v1/status/leader")
            .header("X-Consul-Default-ACL-Policy")
            .as_deref(),
        Some("allow")
    );
}

#[test]
fn bad_bodies_and_parameters() {
    let a = Agent::dev();
    let r = a.put("/v1/catalog/register", "{");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Request decode failed: "));
    let r = a.put("/v1/catalog/register", "");
    assert_eq!(r.text(), "Request decode failed: EOF");
    let r = a.get("/v1/kv/x?ns=default");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature"
    );
    let r = a.get("/v1/catalog/nodes?dc=elsewhere");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "No path to datacenter")
    );
    let r = a.get("/v1/catalog/nodes?filter=Node%20%3D%3D");
    assert_eq!(r.status, 500);
    // A selector that is no field of the element type: an error once there is an
    // element to test, none for an empty answer.
    let r = a.get("/v1/catalog/nodes?filter=Nodes%20%3D%3D%20x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            500,
            "error finding value in datum: /Nodes at part 0: couldn't find key: struct field with name \"Nodes\""
        )
    );
    let r = a.get("/v1/agent/services?filter=Nodes%20%3D%3D%20x");
    assert_eq!((r.status, r.json()), (200, serde_json::json!({})));
    // Still serving.
    assert_eq!(a.get("/v1/status/leader").status, 200);
}

#[test]
fn pretty_output() {
    let a = Agent::start(
        vec![
            "-server".into(),
            "-bootstrap".into(),
            format!("-data-dir={}", Agent::scratch("pretty").display()),
        ],
        None,
    );
    let compact = a.get("/v1/catalog/datacenters").text();
    assert_eq!(compact, "[\"dc1\"]");
    let pretty = a.get("/v1/catalog/datacenters?pretty").text();
    assert_eq!(pretty, "[\n    \"dc1\"\n]\n");
}

/// A body that is JSON but not an object is refused where Consul decodes into a
/// struct, and nothing is written; `null` is Go's zero value (an empty object).
#[test]
fn non_object_bodies_are_refused() {
    let a = Agent::dev();
    let before = a.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(before["CleanupDeadServers"], true);
    let r = a.put("/v1/operator/autopilot/configuration", "[]");
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            "Error parsing autopilot config: json: cannot unmarshal array into Go value of type AutopilotConfig"
        )
    );
    let after = a.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(after["CleanupDeadServers"], true);
    assert_eq!(after["ModifyIndex"], before["ModifyIndex"]);

    for (path, body) in [
        ("/v1/connect/ca/configuration", "[]"),
        ("/v1/session/create", "[]"),
        ("/v1/session/create", "[\"x\"]"),
        ("/v1/catalog/register", "[]"),
        ("/v1/catalog/deregister", "7"),
        ("/v1/coordinate/update", "\"x\""),
        ("/v1/agent/service/register", "[]"),
        ("/v1/agent/check/register", "[]"),
        (
            "/v1/catalog/register",
            "{\"Node\":\"n\",\"Address\":\"1.2.3.4\",\"Service\":[]}",
        ),
    ] {
        let r = a.put(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert!(
            r.text()
                .starts_with("Request decode failed: json: cannot unmarshal "),
            "{path} {body}: {}",
            r.text()
        );
    }
    let r = a.post("/v1/agent/connect/authorize", "true");
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            "Request decode failed: json: cannot unmarshal bool into Go value of type AuthorizeRequest"
        )
    );
    assert_eq!(a.get("/v1/session/list").json(), serde_json::json!([]));
    assert_eq!(a.get("/v1/catalog/node/n").json(), serde_json::Value::Null);

    // `null` decodes as Go's zero value: a session with every default.
    let r = a.put("/v1/session/create", "null");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["ID"].is_string());
}
