// Command report turns `go test -json` output of the compatibility suites into
// summary lines and docs/compatibility.md.
//
// Subcommands:
//
//	report list [-skip RE]            < `go test -list` output > test names
//	report summary -label L [-list F] results.json...
//	report stream                     < go test -json > plain test output
//	report markdown -out FILE -out-dir DIR -known FILE -api-dir DIR ...
//	report gotest -out F -list F -hang D -timeout D -- go test -json ... PKG
//	report gate rerun|verdict|stale ...
//
// summary prints "L: N passed, M failed, K skipped" counting top-level tests
// only. Tests named in the -list file that never reported a result (the
// suite timed out or crashed) count as failed. It exits 3 when a package did
// not build, which the runner treats as a harness error.
//
// gotest runs one package's tests in rounds with a per-test hang budget (see
// gotest.go). gate classifies a suite's failures for the regression gate
// (see gate.go).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: report list|summary|stream|markdown|gotest|gate ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "list":
		err = cmdList(os.Args[2:])
	case "summary":
		err = cmdSummary(os.Args[2:])
	case "stream":
		err = cmdStream()
	case "markdown":
		err = cmdMarkdown(os.Args[2:])
	case "gotest":
		err = cmdGotest(os.Args[2:])
	case "gate":
		err = cmdGate(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		if _, ok := err.(harnessError); ok {
			os.Exit(3)
		}
		os.Exit(2)
	}
}

type harnessError struct{ msg string }

func (h harnessError) Error() string { return h.msg }

// ------------------------------------------------------------ parsing ----

type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type result struct {
	Package string
	Test    string
	Status  string // pass, fail, skip; "" = started but never finished
	Elapsed float64
	Output  []string
	order   int
}

type run struct {
	results     map[string]*result // key: package + "\x00" + test
	pkgStatus   map[string]string
	pkgOutput   map[string][]string
	buildFailed map[string]bool
	n           int
}

func newRun() *run {
	return &run{
		results:     map[string]*result{},
		pkgStatus:   map[string]string{},
		pkgOutput:   map[string][]string{},
		buildFailed: map[string]bool{},
	}
}

func (r *run) get(pkg, test string) *result {
	k := pkg + "\x00" + test
	res, ok := r.results[k]
	if !ok {
		r.n++
		res = &result{Package: pkg, Test: test, order: r.n}
		r.results[k] = res
	}
	return res
}

func (r *run) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.read(f)
}

func (r *run) read(rd io.Reader) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var ev event
		if line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			r.pkgOutput[""] = append(r.pkgOutput[""], string(line))
			continue
		}
		r.apply(ev)
	}
	return sc.Err()
}

func (r *run) apply(ev event) {
	switch ev.Action {
	case "build-output":
		r.pkgOutput[ev.Package] = append(r.pkgOutput[ev.Package], strings.TrimRight(ev.Output, "\n"))
		return
	case "build-fail":
		r.buildFailed[ev.Package] = true
		return
	}
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			out := strings.TrimRight(ev.Output, "\n")
			r.pkgOutput[ev.Package] = append(r.pkgOutput[ev.Package], out)
			if strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]") {
				r.buildFailed[ev.Package] = true
			}
		case "pass", "fail", "skip":
			// Several shards of one package: any failure fails the package.
			if r.pkgStatus[ev.Package] != "fail" {
				r.pkgStatus[ev.Package] = ev.Action
			}
		}
		return
	}
	res := r.get(ev.Package, ev.Test)
	switch ev.Action {
	case "output":
		res.Output = append(res.Output, strings.TrimRight(ev.Output, "\n"))
		// test2json queues the result action behind the "--- PASS" line and
		// may never write it when the binary is killed (hang watchdog), so
		// the line itself counts.
		if name, status, elapsed, ok := resultLine(ev.Output); ok {
			t := r.get(ev.Package, name)
			if t.Status == "" {
				t.Status, t.Elapsed = status, elapsed
			}
		}
	case "pass", "fail", "skip":
		res.Status = ev.Action
		res.Elapsed = ev.Elapsed
	}
}

var resultLineRE = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \((\d+(?:\.\d+)?)s\)`)

// resultLine parses a "--- PASS: TestName (1.23s)" line.
func resultLine(out string) (name, status string, elapsed float64, ok bool) {
	m := resultLineRE.FindStringSubmatch(out)
	if m == nil {
		return "", "", 0, false
	}
	elapsed, _ = strconv.ParseFloat(m[3], 64)
	return m[2], strings.ToLower(m[1]), elapsed, true
}

func topLevel(name string) bool { return !strings.Contains(name, "/") }

// sorted returns results in first-seen order.
func (r *run) sorted() []*result {
	out := make([]*result, 0, len(r.results))
	for _, res := range r.results {
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out
}

// addExpected registers tests that were listed but never reported.
func (r *run) addExpected(pkg string, names []string) {
	for _, n := range names {
		if pkg == "" {
			// Pick the package the test was seen in, or the only package.
			found := false
			for _, res := range r.results {
				if res.Test == n {
					found = true
					break
				}
			}
			if found {
				continue
			}
			pkg = r.onlyPackage()
		}
		r.get(pkg, n)
	}
}

func (r *run) onlyPackage() string {
	for p := range r.pkgStatus {
		return p
	}
	for _, res := range r.results {
		return res.Package
	}
	return "?"
}

type counts struct{ pass, fail, skip int }

func (c *counts) add(status string) {
	switch status {
	case "pass":
		c.pass++
	case "skip":
		c.skip++
	default:
		c.fail++
	}
}

func (c counts) total() int { return c.pass + c.fail + c.skip }

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// --------------------------------------------------------------- list ----

var testNameRE = regexp.MustCompile(`^(Test|Example|Fuzz)\w*$`)

func cmdList(args []string) error {
	fs := flag.NewFlagSet("list", flag.ExitOnError)
	skip := fs.String("skip", "", "go test -skip pattern (its top-level part is applied)")
	fs.Parse(args)
	var skipRE *regexp.Regexp
	if *skip != "" {
		top := strings.Split(*skip, "/")[0]
		var err error
		if skipRE, err = regexp.Compile(top); err != nil {
			return fmt.Errorf("bad -skip pattern: %v", err)
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	var names []string
	for sc.Scan() {
		n := strings.TrimSpace(sc.Text())
		if !testNameRE.MatchString(n) {
			continue
		}
		if skipRE != nil && skipRE.MatchString(n) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Println(n)
	}
	return sc.Err()
}

// ------------------------------------------------------------ summary ----

func loadRun(files []string, listFile string) (*run, error) {
	r := newRun()
	for _, f := range files {
		if err := r.readFile(f); err != nil {
			return nil, err
		}
	}
	if listFile != "" {
		names, err := readLines(listFile)
		if err != nil {
			return nil, err
		}
		r.addExpected("", names)
	}
	return r, nil
}

func cmdSummary(args []string) error {
	fs := flag.NewFlagSet("summary", flag.ExitOnError)
	label := fs.String("label", "go", "suite label")
	list := fs.String("list", "", "file with the expected top-level test names")
	fs.Parse(args)
	r, err := loadRun(fs.Args(), *list)
	if err != nil {
		return err
	}
	for pkg := range r.buildFailed {
		for _, l := range r.pkgOutput[pkg] {
			fmt.Fprintln(os.Stderr, l)
		}
		return harnessError{fmt.Sprintf("%s: package %s did not build", *label, pkg)}
	}
	var c counts
	for _, res := range r.sorted() {
		if topLevel(res.Test) {
			c.add(res.Status)
		}
	}
	fmt.Printf("%s: %d passed, %d failed, %d skipped\n", *label, c.pass, c.fail, c.skip)
	return nil
}

// ------------------------------------------------------------- stream ----

func cmdStream() error {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	w := bufio.NewWriter(os.Stderr)
	defer w.Flush()
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Fprintln(w, sc.Text())
			continue
		}
		if ev.Action == "output" || ev.Action == "build-output" {
			fmt.Fprint(w, ev.Output)
			w.Flush()
		}
	}
	return sc.Err()
}

// ----------------------------------------------------------- markdown ----

type known struct{ reason, issue string }

func readKnown(path string) (map[string]known, error) {
	out := map[string]known{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want TestName<TAB>reason<TAB>tracking issue", path, i+1)
		}
		k := known{reason: strings.TrimSpace(f[1])}
		if len(f) > 2 {
			k.issue = strings.TrimSpace(f[2])
		}
		out[strings.TrimSpace(f[0])] = k
	}
	return out, nil
}

var funcRE = regexp.MustCompile(`(?m)^func ((?:Test|Example|Fuzz)\w*)\(`)

// testFiles maps test function names to the file that declares them.
func testFiles(dir string) map[string]string {
	out := map[string]string{}
	if dir == "" {
		return out
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range funcRE.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = filepath.Base(f)
		}
	}
	return out
}

var areas = []string{
	"KV", "session", "lock", "semaphore", "txn", "status", "catalog", "health",
	"agent", "event", "coordinate", "snapshot", "operator", "ACL",
	"prepared query", "config entry", "connect", "peering", "other",
}

type rule struct {
	re   *regexp.Regexp
	area string
}

// Name rules that win over the file a test lives in (cross-cutting
// features tested from several files).
var namePriority = []rule{
	{regexp.MustCompile(`Peering`), "peering"},
	{regexp.MustCompile(`ACL|Token|Policy|Policies|Role|AuthMethod|BindingRule|Login|Logout`), "ACL"},
	{regexp.MustCompile(`PreparedQuery`), "prepared query"},
	{regexp.MustCompile(`ConfigEntr`), "config entry"},
	{regexp.MustCompile(`ExportedServices`), "peering"},
	{regexp.MustCompile(`Connect|ConnectCA|Intention|Leaf|Sidecar|Proxy|Gateway|DiscoveryChain|Mesh|Ingress|Terminating|VirtualIP|Expose|Upstream`), "connect"},
}

var fileRules = []rule{
	{regexp.MustCompile(`^kv_`), "KV"},
	{regexp.MustCompile(`^session_`), "session"},
	{regexp.MustCompile(`^lock_`), "lock"},
	{regexp.MustCompile(`^semaphore_`), "semaphore"},
	{regexp.MustCompile(`^txn_`), "txn"},
	{regexp.MustCompile(`^status_`), "status"},
	{regexp.MustCompile(`^catalog_`), "catalog"},
	{regexp.MustCompile(`^health_`), "health"},
	{regexp.MustCompile(`^agent_`), "agent"},
	{regexp.MustCompile(`^event_`), "event"},
	{regexp.MustCompile(`^coordinate_`), "coordinate"},
	{regexp.MustCompile(`^snapshot_`), "snapshot"},
	{regexp.MustCompile(`^operator_`), "operator"},
	{regexp.MustCompile(`^acl_`), "ACL"},
	{regexp.MustCompile(`^prepared_query_`), "prepared query"},
	{regexp.MustCompile(`^config_entry`), "config entry"},
	{regexp.MustCompile(`^(connect|discovery_chain|internal)`), "connect"},
	{regexp.MustCompile(`^peering_`), "peering"},
}

// Name rules used when the file says nothing (api_test.go, watch tests).
var nameRules = []rule{
	{regexp.MustCompile(`^Test(API_)?Agent`), "agent"},
	{regexp.MustCompile(`Txn`), "txn"},
	{regexp.MustCompile(`Semaphore`), "semaphore"},
	{regexp.MustCompile(`Lock`), "lock"},
	{regexp.MustCompile(`Session`), "session"},
	{regexp.MustCompile(`KV|Key`), "KV"},
	{regexp.MustCompile(`Health|Checks|ServiceWatch|ServiceMultipleTags`), "health"},
	{regexp.MustCompile(`Status`), "status"},
	{regexp.MustCompile(`Catalog|Nodes|Services`), "catalog"},
	{regexp.MustCompile(`Agent`), "agent"},
	{regexp.MustCompile(`Event`), "event"},
	{regexp.MustCompile(`Coordinate`), "coordinate"},
	{regexp.MustCompile(`Snapshot`), "snapshot"},
	{regexp.MustCompile(`Operator|Raft|Autopilot|Keyring`), "operator"},
}

func classify(name, file string) string {
	if strings.HasPrefix(file, "config_entry") {
		return "config entry"
	}
	for _, r := range namePriority {
		if r.re.MatchString(name) {
			return r.area
		}
	}
	for _, r := range fileRules {
		if r.re.MatchString(file) {
			return r.area
		}
	}
	for _, r := range nameRules {
		if r.re.MatchString(name) {
			return r.area
		}
	}
	return "other"
}

var (
	// "    kv_test.go:42: message" (t.Error/t.Fatal), "server.go:123: ..." etc.
	locRE = regexp.MustCompile(`^\s+([\w.-]+\.go:\d+): ?(.*)$`)
	// testify: "        	Error:      	Received unexpected error:"
	testifyErrRE = regexp.MustCompile(`^\s+Error:\s+(.*)$`)
	testifyCont  = regexp.MustCompile(`^\s+\t\s*(\S.*)$`)
	noiseRE      = regexp.MustCompile(`CONFIG JSON|test cmd args|skipping cleanup|Saving snapshot|^\s*$`)
)

var watchErrRE = regexp.MustCompile(`Watch errored: (.*)$`)

// firstError extracts a one-line failure cause from a test's output.
func firstError(lines []string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, "concord-compat: ") {
			// A hang: the last error a watch plan logged says what it
			// was waiting for.
			msg := strings.TrimPrefix(l, "concord-compat: ")
			for i := len(lines) - 1; i >= 0; i-- {
				if m := watchErrRE.FindStringSubmatch(lines[i]); m != nil {
					msg += "; last watch error: " + m[1]
					break
				}
			}
			return clip(msg)
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := testifyErrRE.FindStringSubmatch(l); m != nil {
			msg := strings.TrimSpace(m[1])
			// Continuation lines of the Error: block. For "Not equal" the
			// expected/actual dumps are often pointers; the diff says more.
			var cont, diff []string
			for j := i + 1; j < len(lines) && j < i+60; j++ {
				if strings.Contains(lines[j], "Test:") || strings.Contains(lines[j], "Messages:") ||
					strings.Contains(lines[j], "Error Trace:") {
					break
				}
				c := testifyCont.FindStringSubmatch(lines[j])
				if c == nil {
					continue
				}
				text := strings.TrimSpace(c[1])
				if (strings.HasPrefix(text, "-") || strings.HasPrefix(text, "+")) &&
					!strings.HasPrefix(text, "---") && !strings.HasPrefix(text, "+++") {
					diff = append(diff, text)
				} else if len(cont) < 4 && len(diff) == 0 && text != "Diff:" {
					cont = append(cont, text)
				}
			}
			if strings.HasPrefix(msg, "Not equal") && len(diff) > 0 {
				if len(diff) > 6 {
					diff = diff[:6]
				}
				return clip(msg + " diff: " + strings.Join(diff, " "))
			}
			return clip(msg + " " + strings.Join(cont, " "))
		}
		if m := locRE.FindStringSubmatch(l); m != nil {
			if noiseRE.MatchString(m[2]) {
				continue
			}
			if strings.HasPrefix(m[1], "testlog.go") || strings.HasPrefix(m[1], "server.go") && !looksLikeError(m[2]) {
				continue
			}
			return clip(m[1] + ": " + strings.TrimSpace(m[2]))
		}
		if strings.HasPrefix(strings.TrimSpace(l), "panic:") {
			return clip(strings.TrimSpace(l))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "test timed out") || strings.Contains(l, "panic:") {
			return clip(strings.TrimSpace(l))
		}
	}
	return ""
}

func looksLikeError(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "fail") || strings.Contains(s, "err") || strings.Contains(s, "unavailable") ||
		strings.Contains(s, "timeout") || strings.Contains(s, "not found")
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 260 {
		s = s[:257] + "..."
	}
	return s
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "<", "&lt;")
	s = strings.ReplaceAll(s, ">", "&gt;")
	s = strings.ReplaceAll(s, "`", "'")
	return s
}

func statusCell(s string) string {
	switch s {
	case "pass":
		return "pass"
	case "skip":
		return "skip"
	case "fail":
		return "**FAIL**"
	default:
		return "**FAIL** (no result)"
	}
}

type suiteData struct {
	label   string
	name    string
	dir     string
	run     *run
	files   map[string]string
	seconds string
	src     map[string][]string // file name -> lines, loaded lazily
}

var (
	traceLocRE = regexp.MustCompile(`Error Trace:\s+\S*?([\w.-]+_test\.go):(\d+)`)
	plainLocRE = regexp.MustCompile(`^\s+([\w.-]+_test\.go):(\d+): `)
	callRE     = regexp.MustCompile(`\b[a-zA-Z_][\w.()]*\.[A-Z]\w*\(`)
	assertRE   = regexp.MustCompile(`\b(t|r|require|assert)\.[A-Z]`)
)

// failingCall finds where a failed test failed (first test-file location
// in its output) and returns the API call made there, e.g.
// "agent.ServiceRegister(reg)", looking a few lines up from an assertion.
func (s *suiteData) failingCall(lines []string) string {
	if s.dir == "" {
		return ""
	}
	var file string
	var line int
	for _, l := range lines {
		m := traceLocRE.FindStringSubmatch(l)
		if m == nil {
			m = plainLocRE.FindStringSubmatch(l)
		}
		if m != nil {
			file = m[1]
			line, _ = strconv.Atoi(m[2])
			break
		}
	}
	if file == "" {
		return ""
	}
	if s.src == nil {
		s.src = map[string][]string{}
	}
	src, ok := s.src[file]
	if !ok {
		b, _ := os.ReadFile(filepath.Join(s.dir, file))
		src = strings.Split(string(b), "\n")
		s.src[file] = src
	}
	for i := line - 1; i >= 0 && i >= line-6 && i < len(src); i-- {
		code := strings.TrimSpace(src[i])
		if loc := callRE.FindStringIndex(code); loc != nil {
			// Skip pure assertion lines unless they wrap the call.
			rest := assertRE.ReplaceAllString(code, "")
			if callRE.MatchString(rest) {
				return fmt.Sprintf("%s:%d %s", file, line, clipN(code, 90))
			}
		}
	}
	return fmt.Sprintf("%s:%d", file, line)
}

func clipN(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func cmdMarkdown(args []string) error {
	fs := flag.NewFlagSet("markdown", flag.ExitOnError)
	out := fs.String("out", "", "markdown file to write")
	outDir := fs.String("out-dir", "", "directory with <suite>.json, <suite>.list, <suite>.seconds")
	knownFile := fs.String("known", "", "known-failures.txt")
	apiDir := fs.String("api-dir", "", "directory of the api package (test file lookup)")
	watchDir := fs.String("watch-dir", "", "directory of the api/watch package")
	apiVersion := fs.String("api-version", "", "github.com/hashicorp/consul/api version")
	parallel := fs.String("parallel", "", "go test -parallel used")
	fs.Parse(args)
	if *out == "" || *outDir == "" {
		return fmt.Errorf("markdown needs -out and -out-dir")
	}
	kn, err := readKnown(*knownFile)
	if err != nil {
		return err
	}

	load := func(label, name, dir string) (*suiteData, error) {
		j := filepath.Join(*outDir, name+".json")
		if _, err := os.Stat(j); err != nil {
			return nil, nil
		}
		list := filepath.Join(*outDir, name+".list")
		if _, err := os.Stat(list); err != nil {
			list = ""
		}
		r, err := loadRun([]string{j}, list)
		if err != nil {
			return nil, err
		}
		secs, _ := os.ReadFile(filepath.Join(*outDir, name+".seconds"))
		return &suiteData{label: label, name: name, dir: dir, run: r, files: testFiles(dir), seconds: strings.TrimSpace(string(secs))}, nil
	}
	var suites []*suiteData
	for _, s := range []struct{ label, name, dir string }{
		{"go-api official", "official", *apiDir},
		{"go-api watch", "watch", *watchDir},
		{"go-api own", "own", ""},
	} {
		sd, err := load(s.label, s.name, s.dir)
		if err != nil {
			return err
		}
		if sd != nil {
			suites = append(suites, sd)
		}
	}

	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	w("# Go API compatibility\n\n")
	w("<!-- Generated by compat-tests/go/cmd/report (run `compat-tests/run`); do not edit by hand. -->\n\n")
	w("HashiCorp's own Go client test suites, `github.com/hashicorp/consul/api`")
	if *apiVersion != "" {
		w(" %s", *apiVersion)
	}
	w(" and its `api/watch` package, run unchanged against concord (a `consul` shim on `PATH` that execs concord). ")
	w("Each official test boots its own agent through `sdk/testutil`. ")
	w("Counts are top-level tests; subtests are listed at the end. ")
	w("A test that never reported a result (suite timeout or crash) counts as failed.\n\n")
	w("Generated %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if *parallel != "" {
		w(", `go test -p 1 -parallel %s`", *parallel)
	}
	w(".\n\n")

	w("## Totals\n\n| suite | passed | failed | skipped | total | pass rate | wall time |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range suites {
		var c counts
		for _, res := range s.run.sorted() {
			if topLevel(res.Test) {
				c.add(res.Status)
			}
		}
		rate := "–"
		if c.total() > 0 {
			rate = fmt.Sprintf("%.0f%%", 100*float64(c.pass)/float64(c.total()))
		}
		wall := "–"
		if s.seconds != "" {
			if n, err := strconv.Atoi(s.seconds); err == nil {
				wall = (time.Duration(n) * time.Second).String()
			}
		}
		w("| %s | %d | %d | %d | %d | %s | %s |\n", s.label, c.pass, c.fail, c.skip, c.total(), rate, wall)
	}
	w("\n")

	// Per-area totals over the official suites (api + watch).
	type row struct {
		res   *result
		suite *suiteData
		file  string
		area  string
	}
	var rows []row
	var subs []row
	for _, s := range suites {
		if s.name == "own" {
			continue
		}
		for _, res := range s.run.sorted() {
			top := strings.SplitN(res.Test, "/", 2)[0]
			file := s.files[top]
			rw := row{res: res, suite: s, file: file, area: classify(top, file)}
			if topLevel(res.Test) {
				rows = append(rows, rw)
			} else {
				subs = append(subs, rw)
			}
		}
	}
	byArea := map[string]*counts{}
	for _, a := range areas {
		byArea[a] = &counts{}
	}
	for _, rw := range rows {
		byArea[rw.area].add(rw.res.Status)
	}
	w("## By area (official api + api/watch)\n\n| area | passed | failed | skipped | total |\n|---|---:|---:|---:|---:|\n")
	var all counts
	for _, a := range areas {
		c := byArea[a]
		if c.total() == 0 {
			continue
		}
		all.pass += c.pass
		all.fail += c.fail
		all.skip += c.skip
		w("| %s | %d | %d | %d | %d |\n", a, c.pass, c.fail, c.skip, c.total())
	}
	w("| **all** | **%d** | **%d** | **%d** | **%d** |\n\n", all.pass, all.fail, all.skip, all.total())

	// Known failures.
	w("## Known failures\n\n")
	w("Explained in `compat-tests/go/known-failures.txt` (`TestName<TAB>reason<TAB>tracking issue`). ")
	w("They still count as failed above.\n\n")
	var knownRows, fixed []string
	for _, rw := range rows {
		k, ok := kn[rw.res.Test]
		if !ok {
			continue
		}
		if rw.res.Status == "pass" {
			fixed = append(fixed, rw.res.Test)
			continue
		}
		if rw.res.Status == "skip" {
			continue
		}
		knownRows = append(knownRows, fmt.Sprintf("| `%s` | %s | %s | %s |", rw.res.Test, rw.area, mdEscape(k.reason), mdEscape(k.issue)))
	}
	if len(knownRows) == 0 {
		w("None listed.\n\n")
	} else {
		w("| test | area | reason | tracking issue |\n|---|---|---|---|\n%s\n\n", strings.Join(knownRows, "\n"))
	}
	if len(fixed) > 0 {
		w("Listed as known failures but passing now (remove them from the file): %s.\n\n", "`"+strings.Join(fixed, "`, `")+"`")
	}

	// Every official test.
	w("## All official tests\n\n")
	w("`failed at` is the first test-file location the test reported, with the API call made there; ")
	w("`first error` is the first failure line the test printed (for known failures, preceded by the reason from the file).\n\n")
	w("| test | package | file | area | result | time | failed at | first error |\n|---|---|---|---|---|---:|---|---|\n")
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].suite.name != rows[j].suite.name {
			return rows[i].suite.name < rows[j].suite.name
		}
		return rows[i].res.Test < rows[j].res.Test
	})
	for _, rw := range rows {
		cause, at := "", ""
		if rw.res.Status != "pass" && rw.res.Status != "skip" {
			out := rw.res.Output
			if firstError(out) == "" {
				// Failures inside subtests are printed under the subtest.
				out = nil
				for _, sub := range subs {
					if sub.suite == rw.suite && strings.HasPrefix(sub.res.Test, rw.res.Test+"/") && sub.res.Status == "fail" {
						out = append(out, sub.res.Output...)
					}
				}
				out = append(out, rw.res.Output...)
			}
			at = rw.suite.failingCall(out)
			if k, ok := kn[rw.res.Test]; ok {
				cause = "known: " + k.reason
				if e := firstError(out); e != "" {
					cause += " — " + e
				}
			} else if rw.res.Status == "" {
				cause = "no result: the suite timed out or crashed before this test finished"
			} else {
				cause = firstError(out)
			}
		}
		if rw.res.Status == "skip" {
			cause = skipReason(rw.res.Output)
		}
		pkg := strings.TrimPrefix(rw.res.Package, "github.com/hashicorp/consul/")
		if at != "" {
			at = "`" + strings.ReplaceAll(at, "`", "'") + "`"
		}
		w("| `%s` | %s | %s | %s | %s | %.1fs | %s | %s |\n", rw.res.Test, pkg, rw.file, rw.area, statusCell(rw.res.Status), rw.res.Elapsed, strings.ReplaceAll(at, "|", `\|`), mdEscape(cause))
	}
	w("\n")

	if len(subs) > 0 {
		var sc counts
		for _, rw := range subs {
			sc.add(rw.res.Status)
		}
		w("## Subtests\n\n<details><summary>%d subtests: %d passed, %d failed, %d skipped</summary>\n\n", sc.total(), sc.pass, sc.fail, sc.skip)
		w("| subtest | result |\n|---|---|\n")
		for _, rw := range subs {
			w("| `%s` | %s |\n", mdEscape(rw.res.Test), statusCell(rw.res.Status))
		}
		w("\n</details>\n")
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

func skipReason(lines []string) string {
	for _, l := range lines {
		if m := locRE.FindStringSubmatch(l); m != nil && !noiseRE.MatchString(m[2]) {
			return clip("skipped: " + strings.TrimSpace(m[2]))
		}
	}
	return ""
}
