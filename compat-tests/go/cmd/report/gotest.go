package main

// `report gotest`: runs `go test -json` for one package in rounds, with a
// per-test hang budget.
//
// Go has no per-test timeout: a test that blocks forever (a watch waiting
// for an event the server never sends) holds the whole binary until
// -timeout, and every test after it is lost. So this command watches the
// JSON stream; when a top-level test has been running longer than -hang, it
// kills the test process group, records that test as failed ("hung"), and
// starts a new round with only the tests that have no result yet. Tests
// that were running for less than -hang at the kill, or were paused waiting
// for a parallel slot, are simply run again. The whole suite stops at
// -timeout; tests without a result by then are recorded as failed.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

type testState struct {
	status  string    // "", running, paused, pass, fail, skip
	started time.Time // of the current running stretch
	crashes int       // times the binary died on its own while this test ran
}

// A test that was running when the test binary died on its own (another
// test panicked) is run again; after this many such deaths it counts as
// failed, so a crash nobody owns cannot loop forever.
const maxCrashes = 2

func cmdGotest(args []string) error {
	fs := flag.NewFlagSet("gotest", flag.ExitOnError)
	out := fs.String("out", "", "file the JSON events are appended to")
	list := fs.String("list", "", "file with the top-level test names to run")
	hang := fs.Duration("hang", 3*time.Minute, "a top-level test running longer than this is killed and counted as failed")
	total := fs.Duration("timeout", 40*time.Minute, "time budget for the whole suite")
	subRun := fs.String("subrun", "", "optional subtest part of the -run pattern (after the first /)")
	stream := fs.Bool("stream", false, "also print the tests' output to stderr")
	fs.Parse(args)
	base := fs.Args()
	if *out == "" || *list == "" || len(base) == 0 {
		return fmt.Errorf("usage: report gotest -out F -list F [-hang D] [-timeout D] -- go test -json ... PKG")
	}
	names, err := readLines(*list)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	pkg := base[len(base)-1]

	states := map[string]*testState{}
	for _, n := range names {
		states[n] = &testState{}
	}
	deadline := time.Now().Add(*total)
	emit := func(test, action, output string) {
		ev := map[string]any{"Time": time.Now().UTC().Format(time.RFC3339Nano), "Action": action, "Package": pkg, "Test": test}
		if output != "" {
			ev["Output"] = output
		}
		b, _ := json.Marshal(ev)
		f.Write(append(b, '\n'))
	}

	for round := 1; ; round++ {
		var pending []string
		for _, n := range names {
			if s := states[n]; s.status != "pass" && s.status != "fail" && s.status != "skip" {
				pending = append(pending, n)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		left := time.Until(deadline)
		if left < 5*time.Second {
			for _, n := range pending {
				emit(n, "output", fmt.Sprintf("concord-compat: not run, the suite's %s time budget is used up\n", *total))
				emit(n, "fail", "")
				states[n].status = "fail"
			}
			return nil
		}
		for _, n := range pending {
			states[n].status = ""
		}
		pattern := "^(" + strings.Join(quoteAll(pending), "|") + ")$"
		if *subRun != "" {
			pattern += "/" + *subRun
		}
		argv := append([]string{}, base[:len(base)-1]...)
		argv = append(argv, "-run", pattern, "-timeout", (left + 30*time.Second).Round(time.Second).String(), pkg)
		if round > 1 {
			fmt.Fprintf(os.Stderr, "[compat] round %d: %d tests left to run\n", round, len(pending))
		}
		progressed, buildFailed, err := runRound(argv, f, states, *hang, deadline, emit, *stream)
		if err != nil {
			return err
		}
		if buildFailed {
			return harnessError{fmt.Sprintf("%s did not build", pkg)}
		}
		if !progressed {
			// The binary died without any test finishing (crash at start):
			// record the rest as failed rather than looping.
			for _, n := range names {
				if s := states[n]; s.status != "pass" && s.status != "fail" && s.status != "skip" {
					emit(n, "output", "concord-compat: no result; the test binary exited without running this test\n")
					emit(n, "fail", "")
					s.status = "fail"
				}
			}
			return nil
		}
	}
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = regexp.QuoteMeta(n)
	}
	return out
}

// runRound runs one `go test` process. It returns whether any test reached a
// result, and whether the package failed to build.
func runRound(argv []string, f *os.File, states map[string]*testState, hang time.Duration, deadline time.Time,
	emit func(test, action, output string), stream bool) (progressed, buildFailed bool, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, false, err
	}
	if err := cmd.Start(); err != nil {
		return false, false, fmt.Errorf("starting %s: %v", argv[0], err)
	}

	var mu sync.Mutex
	killed := false
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mu.Lock()
				var hung []string
				for n, s := range states {
					if s.status == "running" && now.Sub(s.started) > hang {
						hung = append(hung, n)
					}
				}
				overdue := now.After(deadline)
				if len(hung) > 0 || overdue {
					for _, n := range hung {
						emit(n, "output", fmt.Sprintf("concord-compat: killed after running %s without a result (hang budget); counted as failed\n", hang))
						emit(n, "fail", "")
						states[n].status = "fail"
						progressed = true
					}
					killed = true
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					mu.Unlock()
					return
				}
				mu.Unlock()
			}
		}
	}()

	rd := bufio.NewReaderSize(stdout, 1<<20)
	for {
		line, rerr := rd.ReadBytes('\n')
		if len(line) > 0 {
			mu.Lock()
			if !killed {
				f.Write(line)
				var ev event
				if json.Unmarshal(line, &ev) == nil {
					if stream && (ev.Action == "output" || ev.Action == "build-output") {
						fmt.Fprint(os.Stderr, ev.Output)
					}
					if ev.Action == "build-fail" || (ev.Test == "" && ev.Action == "output" &&
						(strings.Contains(ev.Output, "[build failed]") || strings.Contains(ev.Output, "[setup failed]"))) {
						buildFailed = true
					}
					if ev.Action == "output" {
						// The result line can come long before test2json
						// writes the result action (see run.apply).
						if name, status, _, ok := resultLine(ev.Output); ok {
							if s, ok := states[name]; ok && (s.status == "running" || s.status == "paused" || s.status == "") {
								s.status = status
								progressed = true
							}
						}
					}
					if s, ok := states[ev.Test]; ok {
						switch ev.Action {
						case "run", "cont":
							s.status, s.started = "running", time.Now()
						case "pause":
							s.status = "paused"
						case "pass", "fail", "skip":
							s.status = ev.Action
							progressed = true
						}
					}
				} else if !strings.HasPrefix(string(line), "{") {
					// Plain output (toolchain messages) - keep for diagnosis.
					fmt.Fprint(os.Stderr, string(line))
				}
			}
			mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			break
		}
	}
	werr := cmd.Wait()
	close(done)
	// Agents whose test never stopped them (the sdk harness leaks a server
	// when its readiness wait fails) are still in the process group,
	// orphaned: end them so they don't hold ports and CPU.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	mu.Lock()
	defer mu.Unlock()
	if !killed && werr != nil {
		if ee, ok := werr.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			return progressed, buildFailed, fmt.Errorf("go test failed: %v", werr)
		}
	}
	// Tests that were running when the binary ended on its own (a panic in
	// another test takes the whole binary down) and never reported: run
	// them again, unless that already happened maxCrashes times.
	if !killed {
		for n, s := range states {
			if s.status != "running" {
				continue
			}
			s.crashes++
			if s.crashes < maxCrashes {
				s.status = ""
				continue
			}
			emit(n, "output", fmt.Sprintf("concord-compat: no result; the test binary exited %d times while this test was running\n", s.crashes))
			emit(n, "fail", "")
			s.status = "fail"
			progressed = true
		}
	}
	return progressed, buildFailed, nil
}
