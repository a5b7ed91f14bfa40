package main

// The test network: one network namespace per server, each with a veth pair
// into a bridge in the root namespace. The bridge carries an address too, so
// the workload (running in the root namespace) reaches every server directly,
// also while a server is cut off from its peers. A partition is a set of
// iptables DROP rules inside the isolated server's namespace, so it cuts Raft,
// forwarding and gossip between servers while clients still reach both sides.

import (
	"fmt"
	"os/exec"
	"strings"
)

const (
	bridgeName = "cfbr0"
	subnet     = "10.77.0"
)

type network struct {
	size int
}

func nsName(i int) string  { return fmt.Sprintf("concord-fault-%d", i) }
func vethName(i int) string { return fmt.Sprintf("cfv%d", i) }
func serverIP(i int) string { return fmt.Sprintf("%s.%d", subnet, i) }

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork creates `size` namespaces (servers 1..size) on a fresh bridge,
// removing what an earlier, interrupted run left behind.
func setupNetwork(size int) (*network, error) {
	n := &network{size: size}
	n.teardown()
	steps := [][]string{
		{"ip", "link", "add", bridgeName, "type", "bridge"},
		{"ip", "addr", "add", subnet + ".254/24", "dev", bridgeName},
		{"ip", "link", "set", bridgeName, "up"},
	}
	for i := 1; i <= size; i++ {
		ns := nsName(i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", vethName(i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", vethName(i), "master", bridgeName},
			[]string{"ip", "link", "set", vethName(i), "up"},
			[]string{"ip", "-n", ns, "addr", "add", serverIP(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			n.teardown()
			return nil, err
		}
	}
	return n, nil
}

// isolate cuts server i off from every other server, in both directions.
func (n *network) isolate(i int) error {
	for j := 1; j <= n.size; j++ {
		if j == i {
			continue
		}
		for _, rule := range [][]string{
			{"-A", "INPUT", "-s", serverIP(j), "-j", "DROP"},
			{"-A", "OUTPUT", "-d", serverIP(j), "-j", "DROP"},
		} {
			args := append([]string{"netns", "exec", nsName(i), "iptables"}, rule...)
			if err := run("ip", args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every partition rule from server i's namespace.
func (n *network) heal(i int) error {
	return run("ip", "netns", "exec", nsName(i), "iptables", "-F")
}

func (n *network) teardown() {
	for i := 1; i <= n.size; i++ {
		_ = run("ip", "netns", "del", nsName(i))
		_ = run("ip", "link", "del", vethName(i))
	}
	_ = run("ip", "link", "del", bridgeName)
}
