package main

// Sends generated HTTP requests over raw TCP (so that malformed requests go
// out as generated) and checks that every answer is a well-formed HTTP/1.1
// response.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const requestTimeout = 20 * time.Second

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// httpConn is a worker's keep-alive connection.
type httpConn struct {
	addr string
	c    net.Conn
	cr   *countingReader
	br   *bufio.Reader
}

func (h *httpConn) close() {
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
}

func (h *httpConn) dial() error {
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		return err
	}
	h.c = c
	h.cr = &countingReader{r: c}
	h.br = bufio.NewReaderSize(h.cr, 64<<10)
	return nil
}

type httpResult struct {
	status  int    // 0 = no response
	outcome string // for the histogram: "200", "no-answer", ...
	failure string // why this exchange fails the pass criteria ("" = fine)
	body    string // the start of the answer's body
}

// send runs one request. Requests that may legitimately lose their
// connection (optional, slow, partial, streams) get a connection of their
// own; the others share the worker's keep-alive connection and are retried
// once on a fresh one when a reused connection turns out to be closed.
func (h *httpConn) send(req *httpReq) httpResult {
	own := req.optional || req.slow || req.cut > 0 || req.stream
	if own {
		h.close()
	}
	for attempt := 0; ; attempt++ {
		reused := h.c != nil
		if !reused {
			if err := h.dial(); err != nil {
				return httpResult{outcome: "connect-error", failure: "connect: " + err.Error()}
			}
		}
		res, retry := h.exchange(req, reused)
		if retry && attempt == 0 {
			h.close()
			continue
		}
		if own || res.status == 0 || res.failure != "" {
			h.close()
		}
		return res
	}
}

func (h *httpConn) exchange(req *httpReq, reused bool) (httpResult, bool) {
	wire := req.wire(h.addr)
	h.c.SetDeadline(time.Now().Add(requestTimeout))
	if req.cut > 0 {
		if req.cut < len(wire) {
			wire = wire[:req.cut]
		} else {
			wire = wire[:len(wire)-1]
		}
		h.c.Write(wire)
		h.close()
		return httpResult{outcome: "partial-sent"}, false
	}
	var werr error
	if req.slow {
		chunks := 3 + int(req.idx%3)
		step := (len(wire) + chunks - 1) / chunks
		for i := 0; i < len(wire) && werr == nil; i += step {
			end := min(i+step, len(wire))
			_, werr = h.c.Write(wire[i:end])
			time.Sleep(150 * time.Millisecond)
		}
	} else {
		_, werr = h.c.Write(wire)
	}
	before := h.cr.n
	// Even when the write failed (the server may answer 431 and close
	// while a huge request is still going out), read what came back.
	resp, err := http.ReadResponse(h.br, &http.Request{Method: req.method})
	if err != nil {
		got := h.cr.n - before + h.br.Buffered()
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		switch {
		case got == 0 && reused && !timeout:
			// The server had closed the kept-alive connection (it may do so
			// after any answer): the request goes again on a fresh one.
			return httpResult{}, true
		case got == 0 && timeout:
			return httpResult{outcome: "timeout", failure: fail(req, fmt.Sprintf("no answer within %s", requestTimeout))}, false
		case got == 0:
			why := "connection closed without an answer"
			if werr != nil {
				why += " (write: " + werr.Error() + ")"
			}
			return httpResult{outcome: "no-answer", failure: fail(req, why)}, false
		default:
			return httpResult{outcome: "malformed", failure: "malformed response: " + err.Error()}, false
		}
	}
	res := httpResult{status: resp.StatusCode, outcome: fmt.Sprint(resp.StatusCode)}
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		res.failure = fmt.Sprintf("status code %d out of range", resp.StatusCode)
	}
	if req.stream {
		// Only the head: closing the body would drain the endless stream.
		h.close()
		return res, false
	}
	var head [200]byte
	n, _ := io.ReadFull(resp.Body, head[:])
	res.body = string(head[:n])
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 512<<20)); err != nil {
		res.failure = "response body broken off: " + err.Error()
	}
	resp.Body.Close()
	if resp.Close {
		h.close()
	}
	return res, false
}

// fail is the failure text for a missing answer: none when the request did
// not promise one.
func fail(req *httpReq, why string) string {
	if req.optional {
		return ""
	}
	return why
}
