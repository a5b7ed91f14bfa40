package own

import (
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestTxn_KVSetGetCheckIndex(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	txn := a.Client.Txn()

	ok, resp, qm, err := txn.Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "txn/a", Value: []byte("1"), Flags: 7}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "txn/b", Value: []byte("2")}},
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: "txn/a"}},
	}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotNil(t, qm)
	require.Len(t, resp.Errors, 0)
	require.Len(t, resp.Results, 3)
	for _, r := range resp.Results {
		require.NotNil(t, r.KV)
	}
	// set results carry no value; get returns it.
	require.Equal(t, "txn/a", resp.Results[0].KV.Key)
	require.Nil(t, resp.Results[0].KV.Value)
	require.Equal(t, "txn/a", resp.Results[2].KV.Key)
	require.Equal(t, []byte("1"), resp.Results[2].KV.Value)
	require.Equal(t, uint64(7), resp.Results[2].KV.Flags)
	idx := resp.Results[2].KV.ModifyIndex
	require.NotZero(t, idx)
	// All ops of a txn share one raft index.
	require.Equal(t, resp.Results[0].KV.ModifyIndex, resp.Results[1].KV.ModifyIndex)

	// check-index with the right index, then a cas and get-tree.
	ok, resp, _, err = txn.Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: "txn/a", Index: idx}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "txn/a", Value: []byte("1b"), Index: idx}},
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: "txn/"}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "txn/zzz"}},
	}, nil)
	require.NoError(t, err)
	require.True(t, ok, "errors: %v", txnErrs(resp))
	require.Len(t, resp.Results, 4) // check-index 1 + cas 1 + get-tree 2; check-not-exists returns none
	p, _, err := a.Client.KV().Get("txn/a", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("1b"), p.Value)

	// KV().Txn (the older KV-only wrapper) works too.
	ok, kvresp, _, err := a.Client.KV().Txn(api.KVTxnOps{
		{Verb: api.KVGetOrEmpty, Key: "txn/nope"},
		{Verb: api.KVDelete, Key: "txn/b"},
	}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, kvresp.Results, 1)
	require.Equal(t, "txn/nope", kvresp.Results[0].Key)
	require.Nil(t, kvresp.Results[0].Value)
	p, _, err = a.Client.KV().Get("txn/b", nil)
	require.NoError(t, err)
	require.Nil(t, p)
}

func TestTxn_RollbackOnFailure(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	txn := a.Client.Txn()

	_, err := a.Client.KV().Put(&api.KVPair{Key: "rb/existing", Value: []byte("orig")}, nil)
	require.NoError(t, err)
	cur, _, err := a.Client.KV().Get("rb/existing", nil)
	require.NoError(t, err)

	ok, resp, _, err := txn.Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "rb/new", Value: []byte("x")}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "rb/existing", Value: []byte("changed")}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: "rb/existing", Index: cur.ModifyIndex + 100}},
	}, nil)
	require.NoError(t, err, "a failed txn is a 409 with a body, not a client error")
	require.False(t, ok)
	require.NotNil(t, resp)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, 2, resp.Errors[0].OpIndex)
	require.NotEmpty(t, resp.Errors[0].What)
	require.Len(t, resp.Results, 0)

	// Rolled back: nothing of the txn is visible.
	p, _, err := a.Client.KV().Get("rb/new", nil)
	require.NoError(t, err)
	require.Nil(t, p)
	p, _, err = a.Client.KV().Get("rb/existing", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("orig"), p.Value)
	require.Equal(t, cur.ModifyIndex, p.ModifyIndex)

	// Several failing ops: every error is reported, with Consul's wording.
	ok, resp, _, err = txn.Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: "rb/lock", Value: []byte("v")}},
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: "rb/missing"}},
	}, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.Len(t, resp.Errors, 2, "errors: %v", txnErrs(resp))
	require.Equal(t, 0, resp.Errors[0].OpIndex)
	require.Contains(t, resp.Errors[0].What, "missing session")
	require.Equal(t, 1, resp.Errors[1].OpIndex)
	require.Contains(t, resp.Errors[1].What, "doesn't exist")

	// check-not-exists on an existing key fails.
	ok, resp, _, err = txn.Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "rb/existing"}},
	}, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.Len(t, resp.Errors, 1)
}

func txnErrs(r *api.TxnResponse) string {
	if r == nil {
		return "<nil>"
	}
	var s []string
	for _, e := range r.Errors {
		s = append(s, e.What)
	}
	return strings.Join(s, "; ")
}
