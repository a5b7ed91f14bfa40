package own

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatus_LeaderPeers(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	leader, err := a.Client.Status().Leader()
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("127.0.0.1:%d", a.ServerPort), leader)

	peers, err := a.Client.Status().Peers()
	require.NoError(t, err)
	require.Equal(t, []string{leader}, peers)
}

func TestStatus_ShutdownOnSIGINT(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	start := time.Now()
	err := a.Stop(t)
	require.NoError(t, err, "agent must exit 0 on SIGINT")
	require.Less(t, time.Since(start), 10*time.Second)
	_, err = a.Client.Status().Leader()
	require.Error(t, err, "HTTP listener must be closed after exit")
}

func TestCatalog_Datacenters(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	dcs, err := a.Client.Catalog().Datacenters()
	require.NoError(t, err)
	require.Equal(t, []string{"dc1"}, dcs)
}

func TestCatalog_NodesIncludesSelf(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	eventually(t, 10*time.Second, func() error {
		nodes, qm, err := a.Client.Catalog().Nodes(nil)
		if err != nil {
			return err
		}
		if !qm.KnownLeader {
			return fmt.Errorf("X-Consul-KnownLeader not true")
		}
		if qm.LastIndex < 2 {
			return fmt.Errorf("X-Consul-Index %d < 2", qm.LastIndex)
		}
		if len(nodes) != 1 {
			return fmt.Errorf("want 1 node, got %d", len(nodes))
		}
		return nil
	})
	nodes, qm, err := a.Client.Catalog().Nodes(nil)
	require.NoError(t, err)
	n := nodes[0]
	require.Equal(t, a.NodeName, n.Node)
	require.Equal(t, a.NodeID, n.ID)
	require.Equal(t, "127.0.0.1", n.Address)
	require.Equal(t, "dc1", n.Datacenter)
	require.Equal(t, "127.0.0.1", n.TaggedAddresses["lan"])
	require.Equal(t, "127.0.0.1", n.TaggedAddresses["wan"])
	require.Contains(t, n.Meta, "consul-network-segment")
	require.Equal(t, qm.LastIndex, n.ModifyIndex, "ModifyIndex == X-Consul-Index for a single-node catalog")

	node, _, err := a.Client.Catalog().Node(a.NodeName, nil)
	require.NoError(t, err)
	require.NotNil(t, node)
	require.Equal(t, a.NodeName, node.Node.Node)
	require.Contains(t, node.Services, "consul")

	node, _, err = a.Client.Catalog().Node("nope", nil)
	require.NoError(t, err)
	require.Nil(t, node)
}

func TestCatalog_ServicesIncludesConsul(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	eventually(t, 10*time.Second, func() error {
		svcs, _, err := a.Client.Catalog().Services(nil)
		if err != nil {
			return err
		}
		if _, ok := svcs["consul"]; !ok {
			return fmt.Errorf("service consul missing: %v", svcs)
		}
		return nil
	})

	list, qm, err := a.Client.Catalog().Service("consul", "", nil)
	require.NoError(t, err)
	require.True(t, qm.KnownLeader)
	require.Len(t, list, 1)
	require.Equal(t, a.NodeName, list[0].Node)
	require.Equal(t, "consul", list[0].ServiceName)
	require.Equal(t, "consul", list[0].ServiceID)
	require.Equal(t, "dc1", list[0].Datacenter)
	require.Equal(t, a.ServerPort, list[0].ServicePort)

	list, _, err = a.Client.Catalog().Service("no-such-service", "", nil)
	require.NoError(t, err)
	require.Len(t, list, 0)
}
