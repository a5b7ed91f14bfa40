package main

// The load: register clients doing reads, writes and CAS on a few keys with
// the official Go api client, each recording what it asked and what it was
// told with monotonic timestamps; and durability writers putting unique keys,
// remembering every one that was acknowledged.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/consul/api"
)

// opTimeout bounds one request: long enough to ride out an election, short
// enough that a client stuck on an isolated server moves on.
const opTimeout = 3 * time.Second

type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// Counts per outcome, for the report.
	ok, failed, unknown, readErrors int
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in kvInput, call int64, out kvOutput, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.Unknown {
		h.unknown++
		// An operation whose outcome is unknown may take effect at any point
		// after it was called, or never: it stays open until the end of time.
		ret = math.MaxInt64
	} else {
		h.ok++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (h *history) fail(read bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if read {
		h.readErrors++
	} else {
		h.failed++
	}
}

func newClient(s *server) (*api.Client, error) {
	return api.NewClient(&api.Config{
		Address:    s.ip() + ":8500",
		Scheme:     "http",
		HttpClient: &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	})
}

// outcome says whether a failed write certainly did not take effect: the
// connection was refused (nothing was sent), or the server answered "No
// cluster leader" (concord answers that only for writes it never proposed, or
// whose entry Raft discarded). Anything else leaves the outcome unknown.
func certainlyNotApplied(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "No cluster leader")
}

type registerClient struct {
	id     int
	kv     *api.KV
	h      *history
	keys   []string
	rng    *rand.Rand
	seq    int
	defRd  int // percentage of reads in default consistency mode
	target string
}

func (c *registerClient) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func (c *registerClient) read(key, mode string) (kvPairValue string, index uint64, ok bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	q := (&api.QueryOptions{RequireConsistent: mode == "consistent"}).WithContext(ctx)
	call := c.h.now()
	pair, _, err := c.kv.Get(key, q)
	ret := c.h.now()
	if err != nil {
		c.h.fail(true) // a failed read has no effect: nothing to record
		return "", 0, false
	}
	value := ""
	if pair != nil {
		value, index = string(pair.Value), pair.ModifyIndex
	}
	c.h.add(c.id, kvInput{Kind: opRead, Key: key, Mode: mode}, call, kvOutput{Value: value}, ret)
	return value, index, true
}

func (c *registerClient) write(key string) {
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	ctx, cancel := c.ctx()
	defer cancel()
	call := c.h.now()
	_, err := c.kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	ret := c.h.now()
	in := kvInput{Kind: opWrite, Key: key, Value: value}
	switch {
	case err == nil:
		c.h.add(c.id, in, call, kvOutput{}, ret)
	case certainlyNotApplied(err):
		c.h.fail(false)
	default:
		c.h.add(c.id, in, call, kvOutput{Unknown: true}, ret)
	}
}

// cas reads the key (recorded as a read of its own) and then swaps in a new
// value on the ModifyIndex it saw.
func (c *registerClient) cas(key string) {
	want, index, ok := c.read(key, "consistent")
	if !ok {
		return
	}
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	ctx, cancel := c.ctx()
	defer cancel()
	call := c.h.now()
	swapped, _, err := c.kv.CAS(&api.KVPair{Key: key, Value: []byte(value), ModifyIndex: index},
		(&api.WriteOptions{}).WithContext(ctx))
	ret := c.h.now()
	in := kvInput{Kind: opCAS, Key: key, Value: value, Want: want}
	switch {
	case err == nil:
		c.h.add(c.id, in, call, kvOutput{OK: swapped}, ret)
	case certainlyNotApplied(err):
		c.h.fail(false)
	default:
		c.h.add(c.id, in, call, kvOutput{Unknown: true}, ret)
	}
}

func (c *registerClient) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		key := c.keys[c.rng.Intn(len(c.keys))]
		switch r := c.rng.Intn(100); {
		case r < 40:
			mode := "consistent"
			if c.rng.Intn(100) < c.defRd {
				mode = "default"
			}
			if _, _, ok := c.read(key, mode); !ok {
				time.Sleep(50 * time.Millisecond)
			}
		case r < 70:
			c.write(key)
		default:
			c.cas(key)
		}
	}
}

// durabilityWriter puts unique keys through one server and remembers every
// key whose write was acknowledged.
type durabilityWriter struct {
	id    int
	kv    *api.KV
	mu    sync.Mutex
	acked []string
	tried int
}

func (w *durabilityWriter) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("dur/w%d/%08d", w.id, seq)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_, err := w.kv.Put(&api.KVPair{Key: key, Value: []byte("v")}, (&api.WriteOptions{}).WithContext(ctx))
		cancel()
		w.mu.Lock()
		w.tried++
		if err == nil {
			w.acked = append(w.acked, key)
		}
		w.mu.Unlock()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// missingOn lists the acknowledged keys that server s does not have, reading
// its own copy of the state (?stale, so the answer is that server's, not the
// leader's).
func missingOn(s *server, acked map[string]bool) ([]string, error) {
	client, err := newClient(s)
	if err != nil {
		return nil, err
	}
	keys, _, err := client.KV().Keys("dur/", "", &api.QueryOptions{AllowStale: true})
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	var missing []string
	for k := range acked {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

var errNotConverged = errors.New("servers did not converge")
