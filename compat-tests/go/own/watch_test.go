package own

// api/watch plans (the machinery behind `consul watch` and many client
// libraries) driven against concord.

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/api/watch"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// runPlan starts a watch plan for params and returns a channel that receives
// every result the handler sees.
func runPlan(t *testing.T, a *Agent, params map[string]any) <-chan any {
	t.Helper()
	plan, err := watch.Parse(params)
	require.NoError(t, err)
	out := make(chan any, 64)
	plan.Handler = func(idx uint64, raw any) {
		select {
		case out <- raw:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
		if err := plan.RunWithClientAndHclog(a.Client, logger); err != nil {
			t.Logf("watch plan ended: %v", err)
		}
	}()
	t.Cleanup(func() {
		plan.Stop()
		wg.Wait()
	})
	return out
}

// waitFor reads results until match returns nil or the timeout passes.
func waitFor(t *testing.T, ch <-chan any, timeout time.Duration, match func(any) error) {
	t.Helper()
	deadline := time.After(timeout)
	lastErr := fmt.Errorf("no result delivered")
	for {
		select {
		case raw := <-ch:
			if lastErr = match(raw); lastErr == nil {
				return
			}
		case <-deadline:
			t.Fatalf("watch did not deliver the expected result within %s: %v", timeout, lastErr)
		}
	}
}

func TestWatch_Key(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ch := runPlan(t, a, map[string]any{"type": "key", "key": "w/key"})

	time.Sleep(200 * time.Millisecond)
	_, err := a.Client.KV().Put(&api.KVPair{Key: "w/key", Value: []byte("one")}, nil)
	require.NoError(t, err)
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		p, ok := raw.(*api.KVPair)
		if !ok || p == nil {
			return fmt.Errorf("got %T %v", raw, raw)
		}
		if string(p.Value) != "one" {
			return fmt.Errorf("value %q", p.Value)
		}
		return nil
	})

	_, err = a.Client.KV().Put(&api.KVPair{Key: "w/key", Value: []byte("two")}, nil)
	require.NoError(t, err)
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		p, ok := raw.(*api.KVPair)
		if !ok || p == nil || string(p.Value) != "two" {
			return fmt.Errorf("got %v", raw)
		}
		return nil
	})
}

func TestWatch_KeyPrefix(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ch := runPlan(t, a, map[string]any{"type": "keyprefix", "prefix": "wp/"})

	for _, k := range []string{"wp/a", "wp/b"} {
		_, err := a.Client.KV().Put(&api.KVPair{Key: k, Value: []byte(k)}, nil)
		require.NoError(t, err)
	}
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		pairs, ok := raw.(api.KVPairs)
		if !ok || len(pairs) != 2 {
			return fmt.Errorf("got %T %v", raw, raw)
		}
		return nil
	})
}

func TestWatch_Services(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ch := runPlan(t, a, map[string]any{"type": "services"})

	require.NoError(t, a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "w1", Name: "watched", Port: 1}))
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		m, ok := raw.(map[string][]string)
		if !ok {
			return fmt.Errorf("got %T", raw)
		}
		if _, ok := m["watched"]; !ok {
			return fmt.Errorf("services: %v", m)
		}
		return nil
	})
}

func TestWatch_Nodes(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ch := runPlan(t, a, map[string]any{"type": "nodes"})
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		nodes, ok := raw.([]*api.Node)
		if !ok || len(nodes) != 1 || nodes[0].Node != a.NodeName {
			return fmt.Errorf("got %T %v", raw, raw)
		}
		return nil
	})
}

func TestWatch_ServiceHealth(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	require.NoError(t, a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "h1", Name: "healthy", Port: 1, Check: &api.AgentServiceCheck{CheckID: "h1-ttl", TTL: "60s"},
	}))
	ch := runPlan(t, a, map[string]any{"type": "service", "service": "healthy", "passingonly": true})

	waitFor(t, ch, 10*time.Second, func(raw any) error {
		entries, ok := raw.([]*api.ServiceEntry)
		if !ok || len(entries) != 0 {
			return fmt.Errorf("want 0 passing, got %T %v", raw, raw)
		}
		return nil
	})
	require.NoError(t, a.Client.Agent().PassTTL("h1-ttl", ""))
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		entries, ok := raw.([]*api.ServiceEntry)
		if !ok || len(entries) != 1 {
			return fmt.Errorf("want 1 passing, got %T %v", raw, raw)
		}
		return nil
	})
}

func TestWatch_Checks(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	ch := runPlan(t, a, map[string]any{"type": "checks", "state": "critical"})
	require.NoError(t, a.Client.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "wc", Name: "wc", AgentServiceCheck: api.AgentServiceCheck{TTL: "60s"},
	}))
	waitFor(t, ch, 10*time.Second, func(raw any) error {
		checks, ok := raw.([]*api.HealthCheck)
		if !ok {
			return fmt.Errorf("got %T", raw)
		}
		for _, c := range checks {
			if c.CheckID == "wc" {
				return nil
			}
		}
		return fmt.Errorf("critical checks: %v", checks)
	})
}
