package main

// One `concord agent -dev` on free loopback ports, its log, and the health
// probe the fuzz run is judged by.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const nodeName = "fuzz-agent"

type agent struct {
	cmd     *exec.Cmd
	logPath string
	http    int
	dns     int
	exited  chan struct{}
	exitErr atomic.Value // error
	client  *http.Client
}

// freePort asks the kernel for a free loopback TCP port that is also free
// for UDP (the DNS server listens on both).
func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port")
}

func startAgent(bin, dir, name string) (*agent, error) {
	ports := make([]int, 5)
	seen := map[int]bool{}
	for i := range ports {
		for {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			if !seen[p] {
				seen[p] = true
				ports[i] = p
				break
			}
		}
	}
	a := &agent{http: ports[0], dns: ports[1], exited: make(chan struct{}),
		logPath: filepath.Join(dir, name+".log"),
		client:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	logf, err := os.Create(a.logPath)
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command(bin, "agent", "-dev", "-node="+nodeName,
		"-bind=127.0.0.1", "-client=127.0.0.1",
		fmt.Sprintf("-http-port=%d", ports[0]), fmt.Sprintf("-dns-port=%d", ports[1]),
		fmt.Sprintf("-server-port=%d", ports[2]), fmt.Sprintf("-serf-lan-port=%d", ports[3]),
		fmt.Sprintf("-serf-wan-port=%d", ports[4]), "-grpc-port=-1")
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	go func() {
		err := a.cmd.Wait()
		if err == nil {
			err = fmt.Errorf("exited with status 0")
		}
		a.exitErr.Store(err)
		logf.Close()
		close(a.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !a.alive() {
			return nil, fmt.Errorf("the agent exited during start (%v); log %s:\n%s", a.exitErr.Load(), a.logPath, a.logTail(30))
		}
		if l, err := a.leader(); err == nil && l != "" {
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("no leader after 30 s; log %s:\n%s", a.logPath, a.logTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (a *agent) base() string { return fmt.Sprintf("http://127.0.0.1:%d", a.http) }

func (a *agent) alive() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

func (a *agent) stop() {
	if !a.alive() {
		return
	}
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}

func (a *agent) logTail(n int) string {
	b, _ := os.ReadFile(a.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// panics returns the log lines that report a panic.
func (a *agent) panics() []string {
	b, _ := os.ReadFile(a.logPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "panicked") {
			out = append(out, l)
		}
	}
	return out
}

func (a *agent) leader() (string, error) {
	resp, err := a.client.Get(a.base() + "/v1/status/leader")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET /v1/status/leader: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "" {
		return "", fmt.Errorf("GET /v1/status/leader: no leader")
	}
	return s, nil
}

var probeSeq atomic.Int64

// kvRoundTrip writes a fresh value under fuzz-probe/ and reads it back.
func (a *agent) kvRoundTrip() error {
	n := probeSeq.Add(1)
	key := fmt.Sprintf("/v1/kv/fuzz-probe/%d", n)
	val := fmt.Sprintf("probe-%d-%d", n, time.Now().UnixNano())
	req, _ := http.NewRequest("PUT", a.base()+key, strings.NewReader(val))
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %v", key, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "true" {
		return fmt.Errorf("PUT %s: %d %s", key, resp.StatusCode, clip(string(b), 200))
	}
	resp, err = a.client.Get(a.base() + key + "?raw")
	if err != nil {
		return fmt.Errorf("GET %s: %v", key, err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != val {
		return fmt.Errorf("GET %s?raw: %d %q, want 200 %q", key, resp.StatusCode, clip(string(b), 200), val)
	}
	return nil
}

// probe is the health check: alive, a leader, a KV round-trip.
func (a *agent) probe() error {
	if !a.alive() {
		return fmt.Errorf("the agent process exited: %v", a.exitErr.Load())
	}
	if _, err := a.leader(); err != nil {
		return err
	}
	return a.kvRoundTrip()
}

// probeDNS asks for the agent's own node over UDP and TCP.
func (a *agent) probeDNS() error {
	q := buildQuery(0x4242, nodeName+".node.consul.", 1, 1, false, 0)
	for _, network := range []string{"udp", "tcp"} {
		resp, err := dnsExchange(context.Background(), network, a.dns, q, 3*time.Second)
		if err != nil {
			return fmt.Errorf("DNS %s A %s.node.consul: %v", network, nodeName, err)
		}
		m, err := parseDNS(resp)
		if err != nil {
			return fmt.Errorf("DNS %s: malformed answer: %v", network, err)
		}
		if m.id != 0x4242 || m.rcode != 0 || m.ancount == 0 {
			return fmt.Errorf("DNS %s A %s.node.consul: id %#x rcode %d answers %d, want an answer", network, nodeName, m.id, m.rcode, m.ancount)
		}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}
