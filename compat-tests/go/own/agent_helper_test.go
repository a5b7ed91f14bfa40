package own

// Test helper: boots one concord agent per test and hands back an official
// api.Client pointed at it.
//
// The agent is configured the way HashiCorp's sdk/testutil harness does it:
// one JSON file passed with -config-file, every port chosen by us on
// 127.0.0.1, ports we do not need set to -1 (disabled). Readiness is
// "GET /v1/status/leader returns a non-empty leader". Cleanup sends SIGINT and
// waits up to 10 s (then SIGKILL). The agent's output is attached to the test
// log when the test fails, or always with CONCORD_AGENT_LOGS=1.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Agent is one running concord agent.
type Agent struct {
	NodeName   string
	NodeID     string
	HTTPAddr   string
	ServerPort int
	SerfLAN    int
	Client     *api.Client
	ConfigFile string

	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{}
	exitErr error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// concordBin returns the binary under test: $CONCORD_BIN, or
// ../../target/release/concord relative to this module (compat-tests/go).
func concordBin(t testing.TB) string {
	bin := os.Getenv("CONCORD_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "..", "target", "release", "concord")
		// `go test` runs with the package directory (compat-tests/go/own)
		// as working directory, so the repository root is three levels up.
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolving CONCORD_BIN %q: %v", bin, err)
	}
	if _, err := os.Stat(abs); err != nil {
		// A missing binary is a failure, never a skip (same as the
		// official harness).
		t.Fatalf("concord binary not found at %s (set CONCORD_BIN): %v", abs, err)
	}
	return abs
}

// freePorts reserves n distinct TCP ports on 127.0.0.1 by listening on port
// 0, then releases them all at once.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ls := make([]net.Listener, 0, n)
	ports := make([]int, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("allocating free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func newUUID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ConfigOpt edits the JSON config map before it is written.
type ConfigOpt func(cfg map[string]any)

// StartAgent boots a single-server concord agent (bootstrap, dc1) and waits
// until it has elected itself leader.
func StartAgent(t *testing.T, opts ...ConfigOpt) *Agent {
	t.Helper()
	bin := concordBin(t)

	dir := t.TempDir()
	ports := freePorts(t, 4) // http, serf_lan, serf_wan, server
	id := newUUID(t)
	name := "node-" + id[:8]
	cfg := map[string]any{
		"node_name":               name,
		"node_id":                 id,
		"datacenter":              "dc1",
		"bootstrap":               true,
		"server":                  true,
		"data_dir":                filepath.Join(dir, "data"),
		"bind_addr":               "127.0.0.1",
		"client_addr":             "127.0.0.1",
		"log_level":               "debug",
		"disable_update_check":    true,
		"skip_leave_on_interrupt": true,
		"performance":             map[string]any{"raft_multiplier": 1},
		"ports": map[string]any{
			"dns":      -1,
			"http":     ports[0],
			"https":    -1,
			"serf_lan": ports[1],
			"serf_wan": ports[2],
			"server":   ports[3],
			"grpc":     -1,
			"grpc_tls": -1,
		},
	}
	for _, o := range opts {
		o(cfg)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	a := &Agent{
		NodeName:   name,
		NodeID:     id,
		HTTPAddr:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		ServerPort: ports[3],
		SerfLAN:    ports[1],
		ConfigFile: cfgFile,
		logs:       &syncBuffer{},
		exited:     make(chan struct{}),
	}
	a.cmd = exec.Command(bin, "agent", "-config-file", cfgFile)
	a.cmd.Stdout = a.logs
	a.cmd.Stderr = a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		a.exitErr = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() || os.Getenv("CONCORD_AGENT_LOGS") == "1" {
			t.Logf("concord agent config: %s", raw)
			t.Logf("concord agent output:\n%s", a.logs.String())
		}
	})

	conf := api.DefaultConfig()
	conf.Address = a.HTTPAddr
	conf.Scheme = "http"
	conf.Token = ""
	a.Client, err = api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(readyTimeout())
	var lastErr error
	for {
		select {
		case <-a.exited:
			t.Fatalf("concord agent exited during startup: %v", a.exitErr)
		default:
		}
		leader, err := a.Client.Status().Leader()
		if err == nil && leader != "" {
			return a
		}
		if err == nil {
			err = fmt.Errorf("no leader yet (empty /v1/status/leader)")
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("concord agent not ready after %s: %v", readyTimeout(), lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyTimeout() time.Duration {
	if v := os.Getenv("CONCORD_READY_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 20 * time.Second
}

// stop sends SIGINT and waits up to 10 s, then kills the process.
func (a *Agent) stop(t testing.TB) {
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("concord agent did not exit within 10s of SIGINT; killing it")
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// Stop stops the agent now and returns how it exited.
func (a *Agent) Stop(t testing.TB) error {
	a.stop(t)
	return a.exitErr
}

// Logs returns everything the agent printed so far.
func (a *Agent) Logs() string { return a.logs.String() }

// eventually retries f every 50ms until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
