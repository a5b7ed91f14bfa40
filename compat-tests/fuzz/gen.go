package main

// Random values and whole HTTP requests. Request i of a run is generated
// from its own PCG stream (seed, i), so a seed replays the same requests
// whatever the order the workers send them in.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
)

type gen struct{ r *rand.Rand }

func newGen(seed uint64, idx int) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, uint64(idx)*0x9e3779b97f4a7c15+1))}
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

// Lengths of long keys and names: around LMDB's 511-byte key limit, 4 KiB
// and 64 KiB. -long-keys=false replaces them with lengths up to 400 (see
// main.go), which also keeps the 1-2 MiB string of a "huge-string" body out
// of the Name field.
var longLens = []int{511, 512, 513, 4096, 65536}

func (g *gen) repeat(n int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[g.r.IntN(len(alpha))]
	}
	return string(b)
}

// name: a service/check/node-ish name, sometimes odd.
func (g *gen) name() string {
	switch g.r.IntN(12) {
	case 0:
		return ""
	case 1:
		return g.repeat(longLens[g.r.IntN(len(longLens))])
	case 2:
		return "a\x00b"
	case 3:
		return "\xff\xfe"
	case 4:
		return "web.service/../x"
	case 5:
		return "ünï-cødé"
	case 6:
		return g.repeat(1 + g.r.IntN(70))
	default:
		return g.pick("web", "db", "redis", "api", "web-1", "db-2", "serfHealth", "consul", "_maintenance")
	}
}

// node: a node name that is never the agent's own (force-leave and
// deregistration of it would legitimately take the agent down).
func (g *gen) node() string {
	n := g.name()
	if n == nodeName {
		return "other-node"
	}
	return n
}

func (g *gen) key() string {
	switch g.r.IntN(10) {
	case 0, 1:
		return "fuzz/" + g.repeat(longLens[g.r.IntN(len(longLens))]-5)
	case 2:
		return "fuzz/a\x00b"
	case 3:
		return "fuzz/\xff\xfe\xfd"
	case 4:
		return ""
	default:
		return "fuzz/" + g.pick("a", "b/c", "d/e/f", "lock", "sem/.lock", "x y", "%zz", "..", "a//b")
	}
}

func (g *gen) str() string {
	switch g.r.IntN(8) {
	case 0:
		return strings.Repeat("x", 1<<20)
	case 1:
		return "nul\x00inside"
	case 2:
		return "bad\xc3\x28utf8"
	case 3:
		return ""
	default:
		return g.repeat(g.r.IntN(40))
	}
}

func (g *gen) addr() string {
	return g.pick("127.0.0.1", "::1", "10.0.0.1", "", "not-an-ip", "300.1.1.1", "[::1]:80", "127.0.0.1:1")
}

func (g *gen) duration() string {
	return g.pick("1s", "10s", "0s", "-5s", "1ns", "15m", "abc", "", "1h", "99999999999999h", "10")
}

func (g *gen) intish() any {
	switch g.r.IntN(8) {
	case 0:
		return -1
	case 1:
		return "12"
	case 2:
		return 1e300
	case 3:
		return uint64(1<<64 - 1)
	case 4:
		return nil
	default:
		return g.r.IntN(70000)
	}
}

func (g *gen) float() any {
	return []any{0.5, -1e308, 1e308, "NaN", nil, 0, 3}[g.r.IntN(7)]
}

// mutate replaces a random part of a JSON value with a value of another type.
func (g *gen) mutate(v any, depth int) any {
	if depth > 6 || g.r.IntN(5) == 0 {
		return []any{nil, true, 12, -3.5, "s", []any{}, map[string]any{}, g.str(), []any{1, "x"}}[g.r.IntN(9)]
	}
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			out[k] = x
		}
		if len(out) > 0 {
			keys := make([]string, 0, len(out))
			for k := range out {
				keys = append(keys, k)
			}
			// map order is random; sort for a replayable choice
			sortStrings(keys)
			k := keys[g.r.IntN(len(keys))]
			out[k] = g.mutate(out[k], depth+1)
		}
		if g.r.IntN(4) == 0 {
			out[g.pick("Unknown", "id", "name", "", "\x00")] = g.str()
		}
		return out
	case []any:
		if len(t) == 0 {
			return []any{g.mutate(nil, depth+1)}
		}
		out := append([]any{}, t...)
		i := g.r.IntN(len(out))
		out[i] = g.mutate(out[i], depth+1)
		return out
	default:
		return g.mutate(nil, depth+10)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// body returns a request body and the class of body it is.
func (g *gen) body(rt route) ([]byte, string) {
	tmpl := func() any {
		if rt.body != nil {
			return rt.body(g)
		}
		return map[string]any{"Value": g.str()}
	}
	switch g.r.IntN(14) {
	case 0, 1, 2:
		b, _ := json.Marshal(tmpl())
		return b, "template"
	case 3, 4, 5:
		b, _ := json.Marshal(g.mutate(tmpl(), 0))
		return b, "mutated"
	case 6:
		return []byte(g.pick("[]", "[1,2]", "12", `"str"`, "null", "true", "-0", "1e999", `{"a":1}{"b":2}`)), "non-object"
	case 7:
		n := 1000 + g.r.IntN(100000)
		open, closeB := g.pick("[", `{"a":`), g.pick("]", "}")
		return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closeB, n)), "deep"
	case 8:
		huge := strings.Repeat("y", 1<<20+g.r.IntN(1<<20))
		if len(longLens) > 0 && longLens[len(longLens)-1] <= 400 {
			// -long-keys=false: the huge string goes in a value, not a name
			return []byte(`{"Name":"huge","Notes":"` + huge + `"}`), "huge-string"
		}
		return []byte(`{"Name":"` + huge + `"}`), "huge-string"
	case 9:
		b := make([]byte, g.r.IntN(4096))
		for i := range b {
			b[i] = byte(g.r.UintN(256))
		}
		return b, "random-bytes"
	case 10:
		b, _ := json.Marshal(tmpl())
		b = bytes.Replace(b, []byte(`"`), []byte("\"\x00"), 1+g.r.IntN(3))
		return b, "nul-bytes"
	case 11:
		b, _ := json.Marshal(tmpl())
		return append(append([]byte(`{"X":"`), 0xff, 0xfe, '"', ','), b[1:]...), "invalid-utf8"
	case 12:
		b, _ := json.Marshal(tmpl())
		if len(b) > 1 {
			b = b[:g.r.IntN(len(b))]
		}
		return b, "truncated-json"
	default:
		return nil, "empty"
	}
}

var queryNames = []string{"index", "wait", "dc", "filter", "cas", "flags", "recurse", "keys", "separator",
	"raw", "stale", "consistent", "cached", "near", "node-meta", "tag", "passing", "ns", "partition",
	"token", "pretty", "acquire", "release", "session", "replace-existing-checks", "enable", "reason",
	"note", "segment", "id", "address", "max_stale", "sort", "peer", "merge-central-config", "wan",
	"kind", "restore", "\x00", "%zz", "x"}

func (g *gen) queryValue(name string) string {
	switch g.r.IntN(6) {
	case 0:
		return ""
	case 1:
		return g.pick("abc", "-1", "18446744073709551616", "1e3", "%00", "%ff%fe", "true", "0", " ")
	case 2:
		return strings.Repeat("q", 1+g.r.IntN(8192))
	}
	switch name {
	case "index", "cas", "flags":
		return g.pick("0", "1", "5", "100000000", "-1", "abc")
	case "filter":
		return url.QueryEscape(g.pick(`Service == "web"`, `((((`, `Meta.x contains`, `Node matches "[" `,
			`ServiceTags is empty`, `not`, `Checks.Status == passing`, `a.b.c.d == 1 and or`))
	case "dc":
		return g.pick("dc1", "dc2", "DC1", "")
	case "near":
		return g.pick("_agent", nodeName, "nope")
	case "node-meta":
		return g.pick("a:b", "nocolon", ":")
	default:
		return url.QueryEscape(g.name())
	}
}

// query builds a query string. Every blocking-capable request gets exactly
// one short (or malformed) wait, so that a blocking query ends well within
// the request timeout; an empty or zero wait would mean Consul's 5 minutes.
func (g *gen) query() string {
	n := g.r.IntN(5)
	var parts []string
	hasIndex := false
	for i := 0; i < n; i++ {
		name := queryNames[g.r.IntN(len(queryNames))]
		if name == "wait" {
			continue
		}
		if name == "index" {
			hasIndex = true
		}
		if g.r.IntN(5) == 0 && name != "index" {
			parts = append(parts, name) // bare flag
			continue
		}
		parts = append(parts, name+"="+g.queryValue(name))
	}
	if hasIndex || g.r.IntN(4) == 0 {
		parts = append(parts, "wait="+g.pick("10ms", "200ms", "1s", "abc", "5", "1x"))
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

// escapePath percent-encodes a path parameter the way a client would (NUL and
// invalid UTF-8 stay representable as %00 / %FF).
func escapePath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (g *gen) param(slot string) string {
	switch slot {
	case "{key}":
		return g.key()
	case "{node}":
		return g.node()
	case "{state}":
		return g.pick("any", "passing", "warning", "critical", "maintenance", "bogus", "")
	case "{kind}":
		return g.pick("default", "agent", "agent_recovery", "replication", "config_file_service_registration", "bogus")
	case "{addr}":
		return g.pick("127.0.0.1:1", "garbage", "[::1]:1", "", "127.0.0.1:99999")
	case "{id}":
		return g.pick("00000000-0000-0000-0000-000000000000", "not-a-uuid", g.name())
	default:
		return g.name()
	}
}

var allMethods = []string{"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "FOO", "CONNECT", "TRACE"}

// httpReq is one generated request.
type httpReq struct {
	idx    int
	class  string // what kind of oddity it carries
	route  string // the route template (for the per-route 5xx counts)
	method string
	target string // request target as sent (may hold raw NUL / invalid UTF-8)
	header [][2]string
	body   []byte
	bodyK  string
	stream bool
	// slow: the bytes go out in several writes with pauses in between.
	slow bool
	// cut: only this many bytes are sent, then the connection is closed
	// (0 = all); no answer is expected.
	cut int
	// optional: an answer may be missing (the request breaks HTTP/1.1 syntax
	// or the server's limits); when one comes it must still be well-formed.
	optional bool
}

func (r *httpReq) describe() string {
	t := r.target
	if len(t) > 160 {
		t = t[:160] + fmt.Sprintf("...(%d bytes)", len(r.target))
	}
	hb := 0
	for _, h := range r.header {
		hb += len(h[0]) + len(h[1])
	}
	return fmt.Sprintf("#%d [%s] %s %q (route %s), %d extra headers (%d bytes), body %s %d bytes",
		r.idx, r.class, r.method, t, r.route, len(r.header), hb, r.bodyK, len(r.body))
}

func (g *gen) httpRequest(idx int, rts []route) *httpReq {
	rt := rts[g.r.IntN(len(rts))]
	req := &httpReq{idx: idx, route: rt.path, stream: rt.stream, class: "plain"}
	// the path with its parameters filled in
	path := rt.path
	for {
		i := strings.Index(path, "{")
		if i < 0 {
			break
		}
		j := strings.Index(path[i:], "}") + i
		path = path[:i] + escapePath(g.param(path[i:j+1])) + path[j+1:]
	}
	if g.r.IntN(5) == 0 {
		req.method = allMethods[g.r.IntN(len(allMethods))]
		req.class = "method"
	} else {
		req.method = rt.methods[g.r.IntN(len(rt.methods))]
	}
	if req.method == "PUT" || req.method == "POST" || g.r.IntN(8) == 0 {
		req.body, req.bodyK = g.body(rt)
	} else {
		req.bodyK = "none"
	}
	if rt.path == "/v1/snapshot" && req.method == "PUT" && req.bodyK == "template" {
		req.bodyK = "random-bytes" // a restore of noise
	}
	req.target = path + g.query()
	switch g.r.IntN(20) {
	case 0:
		// long key in the path, exactly one of the brief's lengths
		req.route = "/v1/kv/{long key}"
		req.class = "long-key"
		req.method = g.pick("PUT", "PUT", "GET", "DELETE")
		n := longLens[g.r.IntN(len(longLens))]
		req.target = "/v1/kv/" + g.repeat(n) + g.pick("", "?recurse", "?cas=0", "?keys", "?flags=7")
		if req.method == "PUT" {
			req.body, req.bodyK = []byte("v"), "value"
		}
	case 1:
		req.class = "raw-nul"
		req.target = strings.Replace(req.target, "/", "/\x00", 2)
		req.optional = true
	case 2:
		req.class = "raw-invalid-utf8"
		req.target += "\xff\xfe\xc3\x28"
		req.optional = true
	case 3:
		req.class = "pct-nul-utf8"
		req.target = strings.TrimRight(path, "/") + "/%00%FF%FE" + g.query()
	case 4:
		req.class = "huge-header"
		n := g.pick("8192", "65536", "1048576")
		var sz int
		fmt.Sscan(n, &sz)
		req.header = append(req.header, [2]string{"X-Huge", strings.Repeat("h", sz)})
		req.optional = sz > 32768
	case 5:
		req.class = "many-headers"
		n := 50 + g.r.IntN(400)
		for i := 0; i < n; i++ {
			req.header = append(req.header, [2]string{fmt.Sprintf("X-H%d", i), g.repeat(20)})
		}
		req.optional = n > 100
	case 6:
		req.class = "odd-headers"
		req.header = append(req.header,
			[2]string{"X-Consul-Token", g.pick("", "\x01\x02", strings.Repeat("t", 5000), "00000000-0000-0000-0000-000000000000")},
			[2]string{"Content-Type", g.pick("application/json", "text/plain; charset=\xff", "", "multipart/form-data; boundary=x")},
			[2]string{"Accept-Encoding", g.pick("gzip", "br, deflate", "*", "\xff")},
			[2]string{"X-Consul-Namespace", g.name()},
			[2]string{"Cache-Control", g.pick("max-age=abc", "max-age=5", "no-cache", "stale-if-error=-1")})
		req.optional = true // control bytes in a header value are not HTTP
	case 7:
		req.class = "slow"
		req.slow = true
	case 8:
		req.class = "partial"
		req.cut = 1 + g.r.IntN(200)
	case 9:
		req.class = "bad-framing"
		req.optional = true
		switch g.r.IntN(4) {
		case 0:
			req.header = append(req.header, [2]string{"Transfer-Encoding", "chunked, gzip"})
		case 1:
			req.header = append(req.header, [2]string{"Content-Length", "-5"})
		case 2:
			req.header = append(req.header, [2]string{"Content-Length", "99999999999999999999"})
		default:
			req.header = append(req.header, [2]string{"Host", "a"}, [2]string{"Host", "b"})
		}
	}
	return req
}

// wire renders the request as bytes.
func (r *httpReq) wire(hostport string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: concord-fuzz\r\n", r.method, r.target, hostport)
	framing := false
	for _, h := range r.header {
		if strings.EqualFold(h[0], "Content-Length") || strings.EqualFold(h[0], "Transfer-Encoding") {
			framing = true
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if !framing && (len(r.body) > 0 || r.method == "PUT" || r.method == "POST") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.Bytes()
}
