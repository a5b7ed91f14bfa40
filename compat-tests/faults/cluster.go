package main

// The servers under test: three concord processes, each in its own namespace
// with its own data directory, formed with bootstrap_expect and retry_join
// exactly as an operator would start them. A killed server is restarted with
// the same data directory.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type server struct {
	index   int
	binary  string
	dataDir string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

func (s *server) name() string { return fmt.Sprintf("s%d", s.index) }
func (s *server) ip() string   { return serverIP(s.index) }
func (s *server) http() string { return "http://" + s.ip() + ":8500" }

func (s *server) start(size int) error {
	args := []string{"netns", "exec", nsName(s.index), s.binary, "agent",
		"-server", fmt.Sprintf("-bootstrap-expect=%d", size),
		"-node=" + s.name(), "-bind=" + s.ip(), "-client=" + s.ip(),
		"-data-dir=" + s.dataDir,
		"-dns-port=-1", "-grpc-port=-1", "-serf-wan-port=-1",
		"-retry-interval=1s", "-log-level=info",
		// Consul's advice for production servers (the default, 5, is tuned for
		// the smallest cloud instances and stretches every election fivefold).
		"-hcl=performance { raft_multiplier = 1 }",
	}
	for j := 1; j <= size; j++ {
		if j != s.index {
			args = append(args, "-retry-join="+serverIP(j))
		}
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}(s.exited)
	return nil
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL (`ip netns exec` execs the binary, so the pid is concord's).
func (s *server) kill() {
	if !s.running() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

var probe = &http.Client{Timeout: 500 * time.Millisecond}

// leaderSeen asks one server whom it follows ("" when it knows no leader).
func (s *server) leaderSeen() string {
	resp, err := probe.Get(s.http() + "/v1/status/leader")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var addr string
	if json.Unmarshal(body, &addr) != nil {
		return ""
	}
	return addr
}

type cluster struct {
	servers []*server
}

func startCluster(binary, dir string, size int) (*cluster, error) {
	c := &cluster{}
	for i := 1; i <= size; i++ {
		s := &server{
			index:   i,
			binary:  binary,
			dataDir: filepath.Join(dir, fmt.Sprintf("s%d", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("s%d.log", i)),
		}
		if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if err := s.start(size); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// leader waits until a majority of the servers name the same leader and
// returns its index (1-based).
func (c *cluster) leader(within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		votes := map[string]int{}
		for _, s := range c.servers {
			if s.running() {
				if addr := s.leaderSeen(); addr != "" {
					votes[addr]++
				}
			}
		}
		for addr, n := range votes {
			if n > len(c.servers)/2 {
				for _, s := range c.servers {
					if strings.HasPrefix(addr, s.ip()+":") {
						return s.index, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no leader agreed by a majority within %s (seen: %v)", within, votes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) stop() {
	for _, s := range c.servers {
		s.kill()
	}
}
