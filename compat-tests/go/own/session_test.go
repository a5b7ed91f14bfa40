package own

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestSession_CreateDefaultsInfo(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	s := a.Client.Session()

	id, wm, err := s.Create(nil, nil)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	require.NotNil(t, wm)

	info, qm, err := s.Info(id, nil)
	require.NoError(t, err)
	require.NotNil(t, info)
	require.NotZero(t, qm.LastIndex)
	require.True(t, qm.KnownLeader)
	require.Equal(t, id, info.ID)
	require.Equal(t, a.NodeName, info.Node)
	require.Equal(t, 15*time.Second, info.LockDelay)
	require.Equal(t, api.SessionBehaviorRelease, info.Behavior)
	require.Equal(t, "", info.TTL)
	require.NotZero(t, info.CreateIndex)
	// Consul >= 1.7 reports the default node check as NodeChecks; older
	// servers as Checks. Either is fine, but serfHealth must be there.
	checks := append(append([]string{}, info.Checks...), info.NodeChecks...)
	require.Contains(t, checks, "serfHealth")

	// Unknown session: nil, no error.
	info, _, err = s.Info("00000000-0000-0000-0000-000000000000", nil)
	require.NoError(t, err)
	require.Nil(t, info)
}

func TestSession_CreateCustom(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	s := a.Client.Session()

	id, _, err := s.CreateNoChecks(&api.SessionEntry{
		Name:      "my-session",
		LockDelay: 3 * time.Second,
		Behavior:  api.SessionBehaviorDelete,
		TTL:       "30s",
	}, nil)
	require.NoError(t, err)

	info, _, err := s.Info(id, nil)
	require.NoError(t, err)
	require.Equal(t, "my-session", info.Name)
	require.Equal(t, 3*time.Second, info.LockDelay)
	require.Equal(t, api.SessionBehaviorDelete, info.Behavior)
	require.Equal(t, "30s", info.TTL)
	require.Empty(t, info.Checks)
	require.Empty(t, info.NodeChecks)

	// Invalid TTL is rejected.
	_, _, err = s.Create(&api.SessionEntry{TTL: "1ms"}, nil)
	require.Error(t, err)
}

func TestSession_RenewDestroy(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	s := a.Client.Session()

	id, _, err := s.Create(&api.SessionEntry{TTL: "10s"}, nil)
	require.NoError(t, err)

	renewed, _, err := s.Renew(id, nil)
	require.NoError(t, err)
	require.NotNil(t, renewed)
	require.Equal(t, id, renewed.ID)
	require.Equal(t, "10s", renewed.TTL)

	_, err = s.Destroy(id, nil)
	require.NoError(t, err)

	info, _, err := s.Info(id, nil)
	require.NoError(t, err)
	require.Nil(t, info)

	// Renewing a destroyed session: 404, which the client maps to nil, nil.
	renewed, _, err = s.Renew(id, nil)
	require.NoError(t, err)
	require.Nil(t, renewed)
}

func TestSession_ListNode(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	s := a.Client.Session()

	list, qm, err := s.List(nil)
	require.NoError(t, err)
	require.Len(t, list, 0)
	require.NotZero(t, qm.LastIndex)

	id1, _, err := s.Create(nil, nil)
	require.NoError(t, err)
	id2, _, err := s.CreateNoChecks(&api.SessionEntry{Name: "two"}, nil)
	require.NoError(t, err)

	list, qm, err = s.List(nil)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.True(t, qm.KnownLeader)
	ids := []string{list[0].ID, list[1].ID}
	require.ElementsMatch(t, []string{id1, id2}, ids)

	list, _, err = s.Node(a.NodeName, nil)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, e := range list {
		require.Equal(t, a.NodeName, e.Node)
	}

	list, _, err = s.Node("no-such-node", nil)
	require.NoError(t, err)
	require.Len(t, list, 0)

	_, err = s.Destroy(id1, nil)
	require.NoError(t, err)
	list, _, err = s.List(nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, id2, list[0].ID)
}

func TestSession_TTLExpiry(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	s := a.Client.Session()
	kv := a.Client.KV()

	// Minimum TTL is 10s; Consul invalidates after up to 2×TTL.
	id, _, err := s.CreateNoChecks(&api.SessionEntry{TTL: "10s", LockDelay: time.Millisecond, Behavior: api.SessionBehaviorDelete}, nil)
	require.NoError(t, err)
	ok, _, err := kv.Acquire(&api.KVPair{Key: "ephemeral", Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)

	eventually(t, 25*time.Second, func() error {
		info, _, err := s.Info(id, nil)
		if err != nil {
			return err
		}
		if info != nil {
			return errFalse("session still alive; expiry")
		}
		return nil
	})
	// behavior=delete removes the held key.
	p, _, err := kv.Get("ephemeral", nil)
	require.NoError(t, err)
	require.Nil(t, p)
}
