package own

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestKV_PutGetDelete(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	// Missing key: nil pair, no error, but a usable index.
	p, qm, err := kv.Get("own/missing", nil)
	require.NoError(t, err)
	require.Nil(t, p)
	require.NotZero(t, qm.LastIndex, "X-Consul-Index on a 404 GET")

	wm, err := kv.Put(&api.KVPair{Key: "own/a", Value: []byte("hello"), Flags: 42}, nil)
	require.NoError(t, err)
	require.NotNil(t, wm)

	p, qm, err = kv.Get("own/a", nil)
	require.NoError(t, err)
	require.NotNil(t, p)
	require.Equal(t, "own/a", p.Key)
	require.Equal(t, []byte("hello"), p.Value)
	require.Equal(t, uint64(42), p.Flags)
	require.NotZero(t, p.CreateIndex)
	require.Equal(t, p.CreateIndex, p.ModifyIndex)
	require.GreaterOrEqual(t, qm.LastIndex, p.ModifyIndex)
	require.True(t, qm.KnownLeader)

	// Overwrite bumps ModifyIndex, keeps CreateIndex.
	_, err = kv.Put(&api.KVPair{Key: "own/a", Value: []byte("world")}, nil)
	require.NoError(t, err)
	p2, _, err := kv.Get("own/a", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("world"), p2.Value)
	require.Equal(t, p.CreateIndex, p2.CreateIndex)
	require.Greater(t, p2.ModifyIndex, p.ModifyIndex)
	require.Equal(t, uint64(0), p2.Flags)

	// Binary values round-trip.
	bin := []byte{0, 1, 2, 255, 254, '\n'}
	_, err = kv.Put(&api.KVPair{Key: "own/bin", Value: bin}, nil)
	require.NoError(t, err)
	p, _, err = kv.Get("own/bin", nil)
	require.NoError(t, err)
	require.True(t, bytes.Equal(bin, p.Value))

	// Empty value.
	_, err = kv.Put(&api.KVPair{Key: "own/empty"}, nil)
	require.NoError(t, err)
	p, _, err = kv.Get("own/empty", nil)
	require.NoError(t, err)
	require.NotNil(t, p)
	require.Empty(t, p.Value)

	_, err = kv.Delete("own/a", nil)
	require.NoError(t, err)
	p, _, err = kv.Get("own/a", nil)
	require.NoError(t, err)
	require.Nil(t, p)

	// Deleting a missing key is not an error.
	_, err = kv.Delete("own/never", nil)
	require.NoError(t, err)
}

func TestKV_ListKeysSeparator(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	keys := []string{
		"app/config/a",
		"app/config/b",
		"app/config/sub/c",
		"app/db",
		"app2/x",
		"other",
	}
	for _, k := range keys {
		_, err := kv.Put(&api.KVPair{Key: k, Value: []byte(k)}, nil)
		require.NoError(t, err)
	}

	pairs, qm, err := kv.List("app/", nil)
	require.NoError(t, err)
	require.NotZero(t, qm.LastIndex)
	var got []string
	for _, p := range pairs {
		got = append(got, p.Key)
		require.Equal(t, p.Key, string(p.Value))
	}
	require.Equal(t, []string{"app/config/a", "app/config/b", "app/config/sub/c", "app/db"}, got)

	// Prefix without trailing slash matches app2/ too.
	pairs, _, err = kv.List("app", nil)
	require.NoError(t, err)
	require.Len(t, pairs, 5)

	// Empty prefix lists everything, sorted.
	pairs, _, err = kv.List("", nil)
	require.NoError(t, err)
	got = got[:0]
	for _, p := range pairs {
		got = append(got, p.Key)
	}
	want := append([]string(nil), keys...)
	sort.Strings(want)
	require.Equal(t, want, got)

	// Missing prefix: empty list, no error.
	pairs, _, err = kv.List("nothing/", nil)
	require.NoError(t, err)
	require.Len(t, pairs, 0)

	// Keys without separator.
	ks, _, err := kv.Keys("app/", "", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app/config/a", "app/config/b", "app/config/sub/c", "app/db"}, ks)

	// Keys with separator: folders are rolled up.
	ks, _, err = kv.Keys("app/", "/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app/config/", "app/db"}, ks)

	ks, _, err = kv.Keys("app/config/", "/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app/config/a", "app/config/b", "app/config/sub/"}, ks)

	ks, _, err = kv.Keys("", "/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app/", "app2/", "other"}, ks)
}

func TestKV_CAS(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	// CAS with index 0 creates only if absent.
	ok, _, err := kv.CAS(&api.KVPair{Key: "cas", Value: []byte("v1"), ModifyIndex: 0}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	ok, _, err = kv.CAS(&api.KVPair{Key: "cas", Value: []byte("again"), ModifyIndex: 0}, nil)
	require.NoError(t, err)
	require.False(t, ok, "cas=0 on an existing key must fail")

	p, _, err := kv.Get("cas", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("v1"), p.Value)

	// Wrong index fails and leaves the value alone.
	ok, _, err = kv.CAS(&api.KVPair{Key: "cas", Value: []byte("bad"), ModifyIndex: p.ModifyIndex + 1000}, nil)
	require.NoError(t, err)
	require.False(t, ok)
	p2, _, err := kv.Get("cas", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("v1"), p2.Value)
	require.Equal(t, p.ModifyIndex, p2.ModifyIndex)

	// Right index succeeds.
	ok, _, err = kv.CAS(&api.KVPair{Key: "cas", Value: []byte("v2"), ModifyIndex: p.ModifyIndex}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	p3, _, err := kv.Get("cas", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("v2"), p3.Value)
	require.Greater(t, p3.ModifyIndex, p.ModifyIndex)

	// The old index is now stale.
	ok, _, err = kv.CAS(&api.KVPair{Key: "cas", Value: []byte("v3"), ModifyIndex: p.ModifyIndex}, nil)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestKV_DeleteCAS(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	_, err := kv.Put(&api.KVPair{Key: "dcas", Value: []byte("x")}, nil)
	require.NoError(t, err)
	p, _, err := kv.Get("dcas", nil)
	require.NoError(t, err)

	ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "dcas", ModifyIndex: p.ModifyIndex + 1}, nil)
	require.NoError(t, err)
	require.False(t, ok)
	p2, _, err := kv.Get("dcas", nil)
	require.NoError(t, err)
	require.NotNil(t, p2, "failed delete-cas must not delete")

	ok, _, err = kv.DeleteCAS(&api.KVPair{Key: "dcas", ModifyIndex: p.ModifyIndex}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	p3, _, err := kv.Get("dcas", nil)
	require.NoError(t, err)
	require.Nil(t, p3)
}

func TestKV_DeleteTree(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()

	for _, k := range []string{"tree/a", "tree/b/c", "tree/b/d", "treehouse", "keep/x"} {
		_, err := kv.Put(&api.KVPair{Key: k, Value: []byte("1")}, nil)
		require.NoError(t, err)
	}
	_, err := kv.DeleteTree("tree/", nil)
	require.NoError(t, err)

	pairs, _, err := kv.List("", nil)
	require.NoError(t, err)
	var got []string
	for _, p := range pairs {
		got = append(got, p.Key)
	}
	require.Equal(t, []string{"keep/x", "treehouse"}, got)
}

func TestKV_AcquireReleaseLockIndex(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	kv := a.Client.KV()
	sess := a.Client.Session()

	id, _, err := sess.CreateNoChecks(&api.SessionEntry{LockDelay: 1}, nil) // 1ns → no lock delay
	require.NoError(t, err)
	other, _, err := sess.CreateNoChecks(nil, nil)
	require.NoError(t, err)

	ok, _, err := kv.Acquire(&api.KVPair{Key: "lock", Value: []byte("me"), Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)

	p, _, err := kv.Get("lock", nil)
	require.NoError(t, err)
	require.Equal(t, id, p.Session)
	require.Equal(t, uint64(1), p.LockIndex)
	require.Equal(t, []byte("me"), p.Value)

	// Another session cannot take it.
	ok, _, err = kv.Acquire(&api.KVPair{Key: "lock", Session: other}, nil)
	require.NoError(t, err)
	require.False(t, ok)

	// Re-acquire by the holder succeeds and does not bump LockIndex.
	ok, _, err = kv.Acquire(&api.KVPair{Key: "lock", Value: []byte("me2"), Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	p, _, err = kv.Get("lock", nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1), p.LockIndex)

	// Release by a non-holder fails.
	ok, _, err = kv.Release(&api.KVPair{Key: "lock", Session: other}, nil)
	require.NoError(t, err)
	require.False(t, ok)

	ok, _, err = kv.Release(&api.KVPair{Key: "lock", Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	p, _, err = kv.Get("lock", nil)
	require.NoError(t, err)
	require.Equal(t, "", p.Session)
	require.Equal(t, uint64(1), p.LockIndex, "LockIndex stays after release")

	// A second acquisition (by the other session) bumps LockIndex.
	eventually(t, 20*time.Second, func() error {
		ok, _, err := kv.Acquire(&api.KVPair{Key: "lock", Session: other}, nil)
		if err != nil {
			return err
		}
		if !ok {
			return errFalse("acquire by other session")
		}
		return nil
	})
	p, _, err = kv.Get("lock", nil)
	require.NoError(t, err)
	require.Equal(t, other, p.Session)
	require.Equal(t, uint64(2), p.LockIndex)

	// Acquire with an unknown session is an error (500) in Consul.
	_, _, err = kv.Acquire(&api.KVPair{Key: "lock2", Session: "00000000-0000-0000-0000-00000000dead"}, nil)
	require.Error(t, err)
	require.True(t, strings.Contains(strings.ToLower(err.Error()), "session"), err.Error())

	// Destroying the holder's session releases the lock (behavior=release).
	_, err = sess.Destroy(other, nil)
	require.NoError(t, err)
	p, _, err = kv.Get("lock", nil)
	require.NoError(t, err)
	require.NotNil(t, p, "behavior=release keeps the key")
	require.Equal(t, "", p.Session)
}

type errFalse string

func (e errFalse) Error() string { return string(e) + " returned false" }
