// Command faults runs a three-server concord cluster in network namespaces
// under a steady KV load while it kills and partitions the leader, then checks
// that (1) every acknowledged write is on every server and (2) the recorded
// history of reads, writes and CAS on a few keys is linearizable (porcupine).
//
// It needs root (network namespaces, iptables). Exit codes: 0 all checks
// passed, 1 a check failed, 2 the harness itself failed.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

type faultRecord struct {
	At        time.Duration // since the load started
	What      string
	Target    string
	Recovery  time.Duration // until a majority agreed on a (new) leader
	NewLeader string
}

func main() {
	binary := flag.String("binary", os.Getenv("CONCORD_BIN"), "concord binary under test")
	duration := flag.Duration("duration", 60*time.Second, "how long the load and the faults run")
	hold := flag.Duration("hold", 4*time.Second, "how long a fault lasts")
	calm := flag.Duration("calm", 3*time.Second, "quiet time between faults")
	clients := flag.Int("clients", 9, "register clients (spread over the servers)")
	keys := flag.Int("keys", 4, "register keys")
	defaultReads := flag.Int("default-reads", 30, "percentage of reads in default consistency mode")
	seed := flag.Int64("seed", time.Now().UnixNano(), "random seed")
	out := flag.String("out", "faults-out", "directory for server logs and a failure visualization")
	report := flag.String("report", "", "markdown report to write (optional)")
	flag.Parse()

	code, err := runAll(*binary, *duration, *hold, *calm, *clients, *keys, *defaultReads, *seed, *out, *report)
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: HARNESS ERROR: %v\n", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func runAll(binary string, duration, hold, calm time.Duration, nClients, nKeys, defaultReads int, seed int64, out, report string) (int, error) {
	if binary == "" {
		return 0, fmt.Errorf("no binary: pass -binary or set CONCORD_BIN")
	}
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("needs root for network namespaces and iptables")
	}
	if err := os.RemoveAll(out); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	const size = 3
	net, err := setupNetwork(size)
	if err != nil {
		return 0, err
	}
	defer net.teardown()
	c, err := startCluster(binary, out, size)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	if _, err := c.leader(30 * time.Second); err != nil {
		return 0, fmt.Errorf("cluster did not form: %v", err)
	}
	log("cluster formed; load for %s, seed %d", duration, seed)

	rng := rand.New(rand.NewSource(seed))
	h := &history{start: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	keyNames := make([]string, nKeys)
	for i := range keyNames {
		keyNames[i] = fmt.Sprintf("reg/k%d", i)
	}
	for i := 0; i < nClients; i++ {
		s := c.servers[i%size]
		client, err := newClient(s)
		if err != nil {
			return 0, err
		}
		rc := &registerClient{id: i, kv: client.KV(), h: h, keys: keyNames,
			rng: rand.New(rand.NewSource(rng.Int63())), defRd: defaultReads, target: s.name()}
		wg.Add(1)
		go rc.run(stop, &wg)
	}
	var writers []*durabilityWriter
	for i, s := range c.servers {
		client, err := newClient(s)
		if err != nil {
			return 0, err
		}
		w := &durabilityWriter{id: i + 1, kv: client.KV()}
		writers = append(writers, w)
		wg.Add(1)
		go w.run(stop, &wg)
	}

	faults, err := injectFaults(c, net, h.start, duration, hold, calm, rng)
	close(stop)
	wg.Wait()
	if err != nil {
		return 0, err
	}
	log("load stopped: %d operations recorded", len(h.ops))

	// Durability: every acknowledged key on every server, once they converge.
	acked := map[string]bool{}
	tried := 0
	for _, w := range writers {
		tried += w.tried
		for _, k := range w.acked {
			acked[k] = true
		}
	}
	if _, err := c.leader(30 * time.Second); err != nil {
		return 0, fmt.Errorf("no leader after the faults: %v", err)
	}
	missing := map[string][]string{}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.servers {
		for {
			m, err := missingOn(s, acked)
			if err == nil && len(m) == 0 {
				delete(missing, s.name())
				break
			}
			if err == nil {
				missing[s.name()] = m
			}
			if time.Now().After(deadline) {
				if err != nil {
					return 0, fmt.Errorf("reading %s: %v", s.name(), err)
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Linearizability: all reads, then (if that fails) consistent reads only,
	// so a failure says which guarantee broke.
	all := append([]porcupine.Operation(nil), h.ops...)
	verdictAll, infoAll := porcupine.CheckOperationsVerbose(registerModel, all, 5*time.Minute)
	verdictStrong := verdictAll
	if verdictAll != porcupine.Ok {
		var strong []porcupine.Operation
		for _, op := range all {
			if in := op.Input.(kvInput); in.Kind == opRead && in.Mode == "default" {
				continue
			}
			strong = append(strong, op)
		}
		var infoStrong porcupine.LinearizationInfo
		verdictStrong, infoStrong = porcupine.CheckOperationsVerbose(registerModel, strong, 5*time.Minute)
		if verdictStrong != porcupine.Ok {
			_ = porcupine.VisualizePath(registerModel, infoStrong, filepath.Join(out, "consistent.html"))
		}
		_ = porcupine.VisualizePath(registerModel, infoAll, filepath.Join(out, "all.html"))
	}

	r := summary{
		seed: seed, duration: duration, clients: nClients, keys: nKeys, history: h, faults: faults,
		durTried: tried, durAcked: len(acked), missing: missing,
		verdictAll: verdictAll, verdictStrong: verdictStrong,
	}
	text := r.markdown()
	fmt.Print(text)
	if report != "" {
		if err := os.WriteFile(report, []byte(text), 0o644); err != nil {
			return 0, err
		}
	}
	fmt.Println(r.line())
	if len(missing) > 0 || verdictStrong != porcupine.Ok || verdictAll != porcupine.Ok {
		return 1, nil
	}
	return 0, nil
}

// injectFaults cycles through the faults until the duration is up: kill -9 the
// leader and restart it with its data, isolate the leader from the other
// servers and heal, kill -9 a follower and restart it.
func injectFaults(c *cluster, net *network, start time.Time, duration, hold, calm time.Duration, rng *rand.Rand) ([]faultRecord, error) {
	kinds := []string{"kill leader", "partition leader", "kill follower"}
	var faults []faultRecord
	time.Sleep(calm)
	for n := 0; time.Since(start)+hold+calm < duration; n++ {
		leader, err := c.leader(20 * time.Second)
		if err != nil {
			return faults, err
		}
		kind := kinds[n%len(kinds)]
		target := leader
		if kind == "kill follower" {
			target = 1 + (leader-1+1+rng.Intn(len(c.servers)-1))%len(c.servers)
		}
		s := c.servers[target-1]
		f := faultRecord{At: time.Since(start), What: kind, Target: s.name()}
		log("%s: %s (%s)", f.At.Round(time.Millisecond), kind, s.name())
		t0 := time.Now()
		switch kind {
		case "partition leader":
			if err := net.isolate(target); err != nil {
				return faults, err
			}
		default:
			s.kill()
		}
		// The majority side elects a leader (or keeps it) while the fault lasts.
		if newLeader, err := c.majorityLeaderExcept(target, kind != "kill follower", hold); err == nil {
			f.Recovery = time.Since(t0)
			f.NewLeader = c.servers[newLeader-1].name()
		}
		if rest := hold - time.Since(t0); rest > 0 {
			time.Sleep(rest)
		}
		switch kind {
		case "partition leader":
			if err := net.heal(target); err != nil {
				return faults, err
			}
		default:
			if err := s.start(len(c.servers)); err != nil {
				return faults, err
			}
		}
		faults = append(faults, f)
		time.Sleep(calm)
	}
	return faults, nil
}

// majorityLeaderExcept waits for the servers other than `excluded` to agree on
// a leader (one other than `excluded` when `newOne`).
func (c *cluster) majorityLeaderExcept(excluded int, newOne bool, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		seen := map[string]int{}
		for _, s := range c.servers {
			if s.index != excluded && s.running() {
				if addr := s.leaderSeen(); addr != "" {
					seen[addr]++
				}
			}
		}
		for addr, n := range seen {
			if n < len(c.servers)/2 {
				continue
			}
			for _, s := range c.servers {
				if strings.HasPrefix(addr, s.ip()+":") && !(newOne && s.index == excluded) {
					return s.index, nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no leader")
}

func log(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "[faults] "+format+"\n", args...)
}

type summary struct {
	seed                      int64
	duration                  time.Duration
	clients, keys             int
	history                   *history
	faults                    []faultRecord
	durTried, durAcked        int
	missing                   map[string][]string
	verdictAll, verdictStrong porcupine.CheckResult
}

func (r summary) counts() map[string]int {
	m := map[string]int{}
	for _, op := range r.history.ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		name := map[opKind]string{opRead: "read " + in.Mode, opWrite: "write", opCAS: "cas"}[in.Kind]
		if out.Unknown {
			name += " (unknown outcome)"
		} else if in.Kind == opCAS {
			name += fmt.Sprintf(" (%v)", out.OK)
		}
		m[name]++
	}
	return m
}

func (r summary) line() string {
	lost := 0
	for _, m := range r.missing {
		lost += len(m)
	}
	return fmt.Sprintf("faults: %d register operations, %d faults, linearizable: %s (consistent reads: %s), acknowledged writes %d, lost %d",
		len(r.history.ops), len(r.faults), r.verdictAll, r.verdictStrong, r.durAcked, lost)
}

func (r summary) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Fault run (seed %d)\n\n", r.seed)
	fmt.Fprintf(&b, "Three servers in network namespaces, %s of load: %d register clients on %d keys (official Go api client), three durability writers.\n\n",
		r.duration, r.clients, r.keys)
	b.WriteString("| fault | at | server | majority leader after | leader |\n|---|---|---|---|---|\n")
	for _, f := range r.faults {
		rec := "none within the fault"
		if f.NewLeader != "" {
			rec = f.Recovery.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.What, f.At.Round(time.Millisecond), f.Target, rec, f.NewLeader)
	}
	b.WriteString("\n| register operation | count |\n|---|---|\n")
	counts := r.counts()
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "| %s | %d |\n", k, counts[k])
	}
	fmt.Fprintf(&b, "| writes and CAS that certainly failed (not recorded) | %d |\n", r.history.failed)
	fmt.Fprintf(&b, "| failed reads (not recorded) | %d |\n\n", r.history.readErrors)
	fmt.Fprintf(&b, "- Linearizability (porcupine), whole history: **%s**\n", r.verdictAll)
	fmt.Fprintf(&b, "- Linearizability, writes, CAS and `?consistent` reads only: **%s**\n", r.verdictStrong)
	lost := 0
	for _, m := range r.missing {
		lost += len(m)
	}
	fmt.Fprintf(&b, "- Durability: %d writes tried, %d acknowledged, %d missing on some server\n", r.durTried, r.durAcked, lost)
	for name, m := range r.missing {
		sort.Strings(m)
		if len(m) > 5 {
			m = m[:5]
		}
		fmt.Fprintf(&b, "  - %s is missing %s\n", name, strings.Join(m, ", "))
	}
	b.WriteString("\n")
	return b.String()
}
