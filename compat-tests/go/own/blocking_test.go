package own

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// A blocking GET on a key that does not exist yet returns as soon as it is
// written, with a larger index.
func TestBlocking_KVGetMissingKeyUntilWritten(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	p, qm, err := kv.Get("block/key", nil)
	require.NoError(t, err)
	require.Nil(t, p)
	start := qm.LastIndex
	require.NotZero(t, start)

	go func() {
		time.Sleep(500 * time.Millisecond)
		_, _ = kv.Put(&api.KVPair{Key: "block/key", Value: []byte("arrived")}, nil)
	}()

	t0 := time.Now()
	p, qm, err = kv.Get("block/key", &api.QueryOptions{WaitIndex: start, WaitTime: 10 * time.Second})
	elapsed := time.Since(t0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, elapsed, 400*time.Millisecond, "returned before the write happened")
	require.Less(t, elapsed, 8*time.Second, "did not wake up on write")
	require.NotNil(t, p)
	require.Equal(t, []byte("arrived"), p.Value)
	require.Greater(t, qm.LastIndex, start)
}

// A blocking wait with the current index times out after WaitTime and
// returns the same index.
func TestBlocking_KVGetTimesOutWithSameIndex(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	_, err := kv.Put(&api.KVPair{Key: "block/still", Value: []byte("v")}, nil)
	require.NoError(t, err)
	p, qm, err := kv.Get("block/still", nil)
	require.NoError(t, err)
	idx := qm.LastIndex

	t0 := time.Now()
	p2, qm2, err := kv.Get("block/still", &api.QueryOptions{WaitIndex: idx, WaitTime: 600 * time.Millisecond})
	elapsed := time.Since(t0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, elapsed, 600*time.Millisecond)
	require.Less(t, elapsed, 3*time.Second)
	require.Equal(t, idx, qm2.LastIndex)
	require.Equal(t, p.ModifyIndex, p2.ModifyIndex)
	require.Equal(t, []byte("v"), p2.Value)
}

// Blocking List and Keys on a prefix wake up when a key under it is written
// or deleted.
func TestBlocking_KVListPrefixWakesOnChildWrite(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	_, err := kv.Put(&api.KVPair{Key: "watch/a", Value: []byte("1")}, nil)
	require.NoError(t, err)
	pairs, qm, err := kv.List("watch/", nil)
	require.NoError(t, err)
	require.Len(t, pairs, 1)

	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = kv.Put(&api.KVPair{Key: "watch/b", Value: []byte("2")}, nil)
	}()
	pairs, qm2, err := kv.List("watch/", &api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 10 * time.Second})
	require.NoError(t, err)
	require.Len(t, pairs, 2)
	require.Greater(t, qm2.LastIndex, qm.LastIndex)

	// Keys endpoint blocks too.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = kv.Delete("watch/a", nil)
	}()
	keys, qm3, err := kv.Keys("watch/", "", &api.QueryOptions{WaitIndex: qm2.LastIndex, WaitTime: 10 * time.Second})
	require.NoError(t, err)
	require.Equal(t, []string{"watch/b"}, keys)
	require.Greater(t, qm3.LastIndex, qm2.LastIndex)
}

// Catalog blocking: registering a service wakes a blocked /v1/catalog/services.
func TestBlocking_CatalogServices(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	cat := a.Client.Catalog()

	_, qm, err := cat.Services(nil)
	require.NoError(t, err)

	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = cat.Register(&api.CatalogRegistration{
			Node: "ext-node", Address: "10.1.1.1",
			Service: &api.AgentService{ID: "web1", Service: "web", Port: 80},
		}, nil)
	}()
	svcs, qm2, err := cat.Services(&api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 10 * time.Second})
	require.NoError(t, err)
	require.Contains(t, svcs, "web")
	require.Greater(t, qm2.LastIndex, qm.LastIndex)
}
