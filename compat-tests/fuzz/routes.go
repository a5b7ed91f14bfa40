package main

// The HTTP routes concord serves (src/http/*.rs, src/agent/http.rs,
// src/agent/events.rs, src/agent/monitor.rs, src/connect/http.rs), with the
// methods they take and a body template for the writes.

type route struct {
	path    string   // {x} = a path parameter
	methods []string // the methods the route takes
	body    func(g *gen) any
	stream  bool // answers with a stream that never ends (only the head is read)
}

func routes() []route {
	get := []string{"GET"}
	put := []string{"PUT"}
	return []route{
		{path: "/v1/kv/{key}", methods: []string{"GET", "PUT", "DELETE"}, body: nil},
		{path: "/v1/kv/", methods: []string{"GET", "PUT", "DELETE"}},
		{path: "/v1/kv", methods: []string{"GET", "PUT", "DELETE"}},
		{path: "/v1/txn", methods: put, body: txnBody},
		{path: "/v1/catalog/register", methods: put, body: catalogRegisterBody},
		{path: "/v1/catalog/deregister", methods: put, body: catalogDeregisterBody},
		{path: "/v1/catalog/datacenters", methods: get},
		{path: "/v1/catalog/nodes", methods: get},
		{path: "/v1/catalog/services", methods: get},
		{path: "/v1/catalog/service/{name}", methods: get},
		{path: "/v1/catalog/connect/{name}", methods: get},
		{path: "/v1/catalog/node/{node}", methods: get},
		{path: "/v1/catalog/node-services/{node}", methods: get},
		{path: "/v1/health/node/{node}", methods: get},
		{path: "/v1/health/checks/{name}", methods: get},
		{path: "/v1/health/state/{state}", methods: get},
		{path: "/v1/health/service/{name}", methods: get},
		{path: "/v1/health/connect/{name}", methods: get},
		{path: "/v1/agent/self", methods: get},
		{path: "/v1/agent/members", methods: get},
		{path: "/v1/agent/services", methods: get},
		{path: "/v1/agent/service/{id}", methods: get},
		{path: "/v1/agent/checks", methods: get},
		{path: "/v1/agent/service/register", methods: put, body: serviceBody},
		{path: "/v1/agent/service/deregister/{id}", methods: put},
		{path: "/v1/agent/service/maintenance/{id}", methods: put},
		{path: "/v1/agent/maintenance", methods: put},
		{path: "/v1/agent/check/register", methods: put, body: checkBody},
		{path: "/v1/agent/check/deregister/{id}", methods: put},
		{path: "/v1/agent/check/pass/{id}", methods: put},
		{path: "/v1/agent/check/warn/{id}", methods: put},
		{path: "/v1/agent/check/fail/{id}", methods: put},
		{path: "/v1/agent/check/update/{id}", methods: put, body: checkUpdateBody},
		{path: "/v1/agent/health/service/id/{id}", methods: get},
		{path: "/v1/agent/health/service/name/{name}", methods: get},
		{path: "/v1/agent/reload", methods: put},
		{path: "/v1/agent/token/{kind}", methods: put, body: tokenBody},
		{path: "/v1/agent/host", methods: get},
		{path: "/v1/agent/version", methods: get},
		{path: "/v1/agent/metrics", methods: get},
		{path: "/v1/agent/join/{addr}", methods: put},
		{path: "/v1/agent/force-leave/{node}", methods: put},
		{path: "/v1/agent/monitor", methods: get, stream: true},
		{path: "/v1/agent/connect/ca/roots", methods: get},
		{path: "/v1/agent/connect/ca/leaf/{name}", methods: get},
		{path: "/v1/agent/connect/authorize", methods: []string{"POST"}, body: authorizeBody},
		{path: "/v1/connect/ca/roots", methods: get},
		{path: "/v1/connect/ca/configuration", methods: []string{"GET", "PUT"}, body: caConfigBody},
		{path: "/v1/session/create", methods: put, body: sessionBody},
		{path: "/v1/session/destroy/{id}", methods: put},
		{path: "/v1/session/renew/{id}", methods: put},
		{path: "/v1/session/info/{id}", methods: get},
		{path: "/v1/session/node/{node}", methods: get},
		{path: "/v1/session/list", methods: get},
		{path: "/v1/status/leader", methods: get},
		{path: "/v1/status/peers", methods: get},
		{path: "/v1/coordinate/datacenters", methods: get},
		{path: "/v1/coordinate/nodes", methods: get},
		{path: "/v1/coordinate/node/{node}", methods: get},
		{path: "/v1/coordinate/update", methods: put, body: coordinateBody},
		{path: "/v1/operator/raft/configuration", methods: get},
		{path: "/v1/operator/raft/peer", methods: []string{"DELETE"}},
		{path: "/v1/operator/raft/transfer-leader", methods: []string{"POST"}},
		{path: "/v1/operator/autopilot/configuration", methods: []string{"GET", "PUT"}, body: autopilotBody},
		{path: "/v1/operator/autopilot/health", methods: get},
		{path: "/v1/operator/autopilot/state", methods: get},
		{path: "/v1/operator/keyring", methods: []string{"GET", "POST", "PUT", "DELETE"}, body: keyringBody},
		{path: "/v1/operator/usage", methods: get},
		{path: "/v1/event/fire/{name}", methods: put},
		{path: "/v1/event/list", methods: get},
		{path: "/v1/snapshot", methods: []string{"GET", "PUT"}},
		// Not (yet) served: must still answer cleanly.
		{path: "/v1/acl/token/{id}", methods: get},
		{path: "/v1/query/{id}", methods: get},
		{path: "/v1/config/{kind}/{name}", methods: get},
		{path: "/v1/internal/ui/services", methods: get},
		{path: "/{name}", methods: get},
	}
}

func serviceBody(g *gen) any {
	m := map[string]any{"Name": g.name(), "ID": g.name(), "Tags": []any{g.name(), g.name()},
		"Port": g.intish(), "Address": g.addr(), "Meta": map[string]any{g.name(): g.str()}}
	if g.r.IntN(2) == 0 {
		m["Check"] = checkBody(g)
	}
	if g.r.IntN(3) == 0 {
		m["Checks"] = []any{checkBody(g), checkBody(g)}
	}
	if g.r.IntN(4) == 0 {
		m["Weights"] = map[string]any{"Passing": g.intish(), "Warning": g.intish()}
	}
	if g.r.IntN(4) == 0 {
		m["Kind"] = g.pick("", "connect-proxy", "mesh-gateway", "bogus")
		m["Proxy"] = map[string]any{"DestinationServiceName": g.name(), "Upstreams": []any{map[string]any{"DestinationName": g.name(), "LocalBindPort": g.intish()}}}
	}
	return m
}

func checkBody(g *gen) any {
	m := map[string]any{"Name": g.name(), "CheckID": g.name(), "Notes": g.str()}
	switch g.r.IntN(6) {
	case 0:
		m["TTL"] = g.duration()
	case 1:
		// Only loopback ports that nothing listens on: no outbound traffic.
		m["HTTP"] = g.pick("http://127.0.0.1:1/x", "not a url", "ftp://127.0.0.1:1", "")
		m["Interval"] = g.duration()
	case 2:
		m["TCP"] = g.pick("127.0.0.1:1", "nohost", ":::")
		m["Interval"] = g.duration()
	case 3:
		m["ServiceID"] = g.name()
		m["TTL"] = g.duration()
	case 4:
		m["AliasService"] = g.name()
	default:
		m["DeregisterCriticalServiceAfter"] = g.duration()
		m["TTL"] = g.duration()
	}
	return m
}

func checkUpdateBody(g *gen) any {
	return map[string]any{"Status": g.pick("passing", "warning", "critical", "bogus", ""), "Output": g.str()}
}

func catalogRegisterBody(g *gen) any {
	m := map[string]any{"Node": g.node(), "Address": g.addr(), "Datacenter": g.pick("dc1", "", "dc2"),
		"NodeMeta": map[string]any{g.name(): g.str()}, "TaggedAddresses": map[string]any{"lan": g.addr()}}
	if g.r.IntN(2) == 0 {
		m["Service"] = serviceBody(g)
	}
	if g.r.IntN(2) == 0 {
		m["Check"] = map[string]any{"Node": g.node(), "CheckID": g.name(), "Name": g.name(),
			"Status": g.pick("passing", "warning", "critical", "bogus"), "ServiceID": g.name()}
	}
	if g.r.IntN(4) == 0 {
		m["Checks"] = []any{map[string]any{"CheckID": g.name(), "Status": "passing"}}
	}
	return m
}

func catalogDeregisterBody(g *gen) any {
	m := map[string]any{"Node": g.node(), "Datacenter": g.pick("dc1", "", "dc2")}
	if g.r.IntN(2) == 0 {
		m["ServiceID"] = g.name()
	}
	if g.r.IntN(2) == 0 {
		m["CheckID"] = g.name()
	}
	return m
}

func txnBody(g *gen) any {
	n := g.r.IntN(6)
	if g.r.IntN(10) == 0 {
		n = 64 + g.r.IntN(10) // over the 64 operation limit
	}
	ops := make([]any, n)
	for i := range ops {
		switch g.r.IntN(5) {
		case 0:
			ops[i] = map[string]any{"Node": map[string]any{"Verb": g.pick("set", "get", "delete", "cas", "bogus"),
				"Node": map[string]any{"Node": g.node(), "Address": g.addr()}}}
		case 1:
			ops[i] = map[string]any{"Service": map[string]any{"Verb": g.pick("set", "get", "delete", "cas"),
				"Node": g.node(), "Service": map[string]any{"ID": g.name(), "Service": g.name()}}}
		case 2:
			ops[i] = map[string]any{"Check": map[string]any{"Verb": g.pick("set", "get", "delete", "cas"),
				"Check": map[string]any{"Node": g.node(), "CheckID": g.name()}}}
		default:
			ops[i] = map[string]any{"KV": map[string]any{
				"Verb":    g.pick("set", "get", "get-tree", "check-index", "check-session", "check-not-exists", "delete", "delete-tree", "delete-cas", "cas", "lock", "unlock", "bogus"),
				"Key":     g.key(),
				"Value":   g.pick("aGVsbG8=", "not base64!", "", "AA=="),
				"Flags":   g.intish(),
				"Index":   g.intish(),
				"Session": g.name(),
			}}
		}
	}
	return ops
}

func sessionBody(g *gen) any {
	return map[string]any{"Name": g.name(), "Node": g.pick(nodeName, g.node()), "TTL": g.duration(),
		"Behavior": g.pick("release", "delete", "bogus", ""), "LockDelay": g.duration(),
		"Checks": []any{g.name()}, "NodeChecks": []any{"serfHealth", g.name()}}
}

func coordinateBody(g *gen) any {
	return map[string]any{"Node": g.node(), "Segment": g.str(), "Coord": map[string]any{
		"Vec":   []any{g.float(), g.float(), g.float(), g.float(), g.float(), g.float(), g.float(), g.float()},
		"Error": g.float(), "Adjustment": g.float(), "Height": g.float()}}
}

func autopilotBody(g *gen) any {
	return map[string]any{"CleanupDeadServers": g.r.IntN(2) == 0, "LastContactThreshold": g.duration(),
		"MaxTrailingLogs": g.intish(), "MinQuorum": g.intish(), "ServerStabilizationTime": g.duration()}
}

func keyringBody(g *gen) any {
	return map[string]any{"Key": g.pick("", "not base64", "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", g.str())}
}

func tokenBody(g *gen) any { return map[string]any{"Token": g.str()} }

func authorizeBody(g *gen) any {
	return map[string]any{"Target": g.name(), "ClientCertURI": g.pick("spiffe://x/ns/default/dc/dc1/svc/web", g.str()),
		"ClientCertSerial": g.str()}
}

func caConfigBody(g *gen) any {
	return map[string]any{"Provider": g.pick("consul", "vault", "bogus", ""), "Config": map[string]any{"LeafCertTTL": g.duration()}}
}
