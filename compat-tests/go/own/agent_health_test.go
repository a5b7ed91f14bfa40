package own

// Agent service/check registration, TTL updates, and catalog/health queries
// with passing-only, tags and filter expressions. These need the agent and
// health endpoints.

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestAgent_ServiceRegisterTTL(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ag := a.Client.Agent()

	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID:      "web-1",
		Name:    "web",
		Tags:    []string{"v1", "primary"},
		Port:    8080,
		Address: "127.0.0.1",
		Meta:    map[string]string{"env": "prod"},
		Check:   &api.AgentServiceCheck{TTL: "30s"},
	}))

	svcs, err := ag.Services()
	require.NoError(t, err)
	require.Contains(t, svcs, "web-1")
	s := svcs["web-1"]
	require.Equal(t, "web", s.Service)
	require.Equal(t, []string{"v1", "primary"}, s.Tags)
	require.Equal(t, 8080, s.Port)
	require.Equal(t, "prod", s.Meta["env"])
	require.Equal(t, api.AgentWeights{Passing: 1, Warning: 1}, s.Weights)

	one, _, err := ag.Service("web-1", nil)
	require.NoError(t, err)
	require.Equal(t, "web-1", one.ID)
	require.NotEmpty(t, one.ContentHash)

	checks, err := ag.Checks()
	require.NoError(t, err)
	c, ok := checks["service:web-1"]
	require.True(t, ok, "check id service:<id>; got %v", keys(checks))
	require.Equal(t, api.HealthCritical, c.Status, "TTL checks start critical")
	require.Equal(t, "ttl", c.Type)
	require.Equal(t, "web-1", c.ServiceID)
	require.Equal(t, "web", c.ServiceName)
	require.Equal(t, "Service 'web' check", c.Name)

	require.NoError(t, ag.UpdateTTL("service:web-1", "all good", api.HealthPassing))
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthPassing, checks["service:web-1"].Status)
	require.Equal(t, "all good", checks["service:web-1"].Output)

	require.NoError(t, ag.WarnTTL("service:web-1", "meh"))
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthWarning, checks["service:web-1"].Status)

	// A check with an invalid initial status is rejected by the agent.
	require.Error(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		Name: "bad", Check: &api.AgentServiceCheck{TTL: "15s", Status: "fluffy"},
	}))
	// Unknown check: error.
	require.Error(t, ag.PassTTL("nope", ""))

	// The agent's view syncs into the catalog.
	eventually(t, 10*time.Second, func() error {
		cs, _, err := a.Client.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		if len(cs) != 1 || cs[0].ServiceID != "web-1" {
			return fmt.Errorf("catalog has %d web instances", len(cs))
		}
		return nil
	})

	// Agent health endpoint.
	status, info, err := ag.AgentHealthServiceByID("web-1")
	require.NoError(t, err)
	require.Equal(t, api.HealthWarning, status)
	require.NotNil(t, info)
	status, _, err = ag.AgentHealthServiceByID("missing")
	require.NoError(t, err)
	require.Equal(t, api.HealthCritical, status)

	require.NoError(t, ag.ServiceDeregister("web-1"))
	svcs, err = ag.Services()
	require.NoError(t, err)
	require.NotContains(t, svcs, "web-1")
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.NotContains(t, checks, "service:web-1")
}

func TestAgent_CheckRegisterTTL(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ag := a.Client.Agent()

	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{
		ID:   "mem",
		Name: "Memory utilization",
		// The outer Notes: the embedded AgentServiceCheck.Notes is shadowed by it in
		// Go's JSON encoding and never reaches the server.
		Notes: "memory notes",
		AgentServiceCheck: api.AgentServiceCheck{
			TTL:    "15s",
			Status: api.HealthPassing,
		},
	}))
	checks, err := ag.Checks()
	require.NoError(t, err)
	require.Contains(t, checks, "mem")
	require.Equal(t, api.HealthPassing, checks["mem"].Status)
	require.Equal(t, "memory notes", checks["mem"].Notes)
	require.Equal(t, "", checks["mem"].ServiceID)

	require.NoError(t, ag.FailTTL("mem", "oom"))
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthCritical, checks["mem"].Status)
	require.Equal(t, "oom", checks["mem"].Output)

	// Node-level check shows up in health/node.
	eventually(t, 10*time.Second, func() error {
		hc, _, err := a.Client.Health().Node(a.NodeName, nil)
		if err != nil {
			return err
		}
		for _, c := range hc {
			if c.CheckID == "mem" && c.Status == api.HealthCritical {
				return nil
			}
		}
		return fmt.Errorf("mem check not in /v1/health/node: %v", hc)
	})

	filtered, err := ag.ChecksWithFilter(`Status == "critical"`)
	require.NoError(t, err)
	require.Contains(t, filtered, "mem")

	require.NoError(t, ag.CheckDeregister("mem"))
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.NotContains(t, checks, "mem")
}

func TestAgent_ServicesFilter(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ag := a.Client.Agent()
	for i, env := range []string{"prod", "prod", "dev"} {
		require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
			ID: fmt.Sprintf("api-%d", i), Name: "api", Port: 9000 + i,
			Tags: []string{env}, Meta: map[string]string{"env": env},
		}))
	}
	out, err := ag.ServicesWithFilter(`Meta.env == "prod"`)
	require.NoError(t, err)
	require.Len(t, out, 2)
	out, err = ag.ServicesWithFilter(`"dev" in Tags`)
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Contains(t, out, "api-2")

	_, err = ag.ServicesWithFilter(`this is not a filter`)
	require.Error(t, err)
}

func TestHealth_ServicePassingTagsFilter(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ag := a.Client.Agent()

	reg := func(id string, tags []string, version string) {
		require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "db", Port: 5432, Tags: tags,
			Meta:  map[string]string{"version": version},
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "60s"},
		}))
	}
	reg("db-1", []string{"primary", "v1"}, "1")
	reg("db-2", []string{"replica", "v1"}, "1")
	reg("db-3", []string{"replica", "v2"}, "2")
	require.NoError(t, ag.PassTTL("ttl-db-1", ""))
	require.NoError(t, ag.PassTTL("ttl-db-3", ""))

	h := a.Client.Health()
	var entries []*api.ServiceEntry
	eventually(t, 10*time.Second, func() error {
		var err error
		entries, _, err = h.Service("db", "", false, nil)
		if err != nil {
			return err
		}
		if len(entries) != 3 {
			return fmt.Errorf("want 3 db entries, got %d", len(entries))
		}
		return nil
	})
	for _, e := range entries {
		require.Equal(t, a.NodeName, e.Node.Node)
		require.Equal(t, "db", e.Service.Service)
		// serfHealth + the service check
		require.Len(t, e.Checks, 2, "checks of %s", e.Service.ID)
	}

	eventually(t, 10*time.Second, func() error {
		entries, _, err := h.Service("db", "", true, nil)
		if err != nil {
			return err
		}
		if ids(entries) != "db-1,db-3" {
			return fmt.Errorf("passing-only gave %s", ids(entries))
		}
		return nil
	})

	entries, _, err := h.Service("db", "replica", false, nil)
	require.NoError(t, err)
	require.Equal(t, "db-2,db-3", ids(entries))

	entries, _, err = h.ServiceMultipleTags("db", []string{"replica", "v2"}, false, nil)
	require.NoError(t, err)
	require.Equal(t, "db-3", ids(entries))

	entries, _, err = h.Service("db", "", false, &api.QueryOptions{Filter: `Service.Meta.version == "1"`})
	require.NoError(t, err)
	require.Equal(t, "db-1,db-2", ids(entries))

	entries, _, err = h.Service("db", "", true, &api.QueryOptions{Filter: `"replica" in Service.Tags`})
	require.NoError(t, err)
	require.Equal(t, "db-3", ids(entries))

	crit, _, err := h.State(api.HealthCritical, nil)
	require.NoError(t, err)
	require.Len(t, crit, 1)
	require.Equal(t, "ttl-db-2", crit[0].CheckID)

	checks, _, err := h.Checks("db", &api.QueryOptions{Filter: `Status == "passing"`})
	require.NoError(t, err)
	require.Len(t, checks, 2)

	// AggregatedStatus over one entry's checks.
	entries, _, err = h.Service("db", "primary", false, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, api.HealthPassing, entries[0].Checks.AggregatedStatus())

	// Catalog queries with tag and filter.
	cs, _, err := a.Client.Catalog().Service("db", "v1", nil)
	require.NoError(t, err)
	require.Len(t, cs, 2)
	cs, _, err = a.Client.Catalog().Service("db", "", &api.QueryOptions{Filter: `ServiceMeta.version == "2"`})
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, "db-3", cs[0].ServiceID)
	svcs, _, err := a.Client.Catalog().Services(nil)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"primary", "replica", "v1", "v2"}, svcs["db"])
}

func TestCatalog_RegisterExternalNodeFilter(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	cat := a.Client.Catalog()

	for i, os := range []string{"linux", "linux", "windows"} {
		_, err := cat.Register(&api.CatalogRegistration{
			Node:     fmt.Sprintf("ext-%d", i),
			Address:  fmt.Sprintf("10.0.0.%d", i+1),
			NodeMeta: map[string]string{"os": os},
			Service: &api.AgentService{
				ID: "cache", Service: "cache", Port: 6379, Tags: []string{os},
			},
			Check: &api.AgentCheck{
				CheckID: "cache-alive", Name: "cache alive", Status: api.HealthPassing, ServiceID: "cache",
			},
		}, nil)
		require.NoError(t, err)
	}

	nodes, _, err := cat.Nodes(&api.QueryOptions{Filter: `Meta.os == "linux"`})
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	nodes, _, err = cat.Nodes(&api.QueryOptions{NodeMeta: map[string]string{"os": "windows"}})
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, "ext-2", nodes[0].Node)

	cs, _, err := cat.Service("cache", "", &api.QueryOptions{Filter: `Address == "10.0.0.1"`})
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, "ext-0", cs[0].Node)

	entries, _, err := a.Client.Health().Service("cache", "", true, &api.QueryOptions{Filter: `Node.Meta.os == "linux"`})
	require.NoError(t, err)
	require.Len(t, entries, 2)

	_, err = cat.Deregister(&api.CatalogDeregistration{Node: "ext-0"}, nil)
	require.NoError(t, err)
	cs, _, err = cat.Service("cache", "", nil)
	require.NoError(t, err)
	require.Len(t, cs, 2)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ids(entries []*api.ServiceEntry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Service.ID)
	}
	sort.Strings(out) // result order is not part of the contract here
	return strings.Join(out, ",")
}
