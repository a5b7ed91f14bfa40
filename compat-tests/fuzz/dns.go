package main

// DNS: query building, a strict parser for answers, and the generator of
// odd queries (random names and labels, qtypes, EDNS, malformed and
// truncated packets) sent over UDP and TCP.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

type label []byte

func nameLabels(name string) []label {
	var out []label
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l != "" {
			out = append(out, label(l))
		}
	}
	return out
}

// appendName writes labels as given (a label over 63 bytes writes an
// invalid length byte on purpose).
func appendName(b []byte, ls []label) []byte {
	for _, l := range ls {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func header(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	return b
}

func opt(size uint16, ttl uint32, options []byte) []byte {
	b := []byte{0, 0, 41}
	b = binary.BigEndian.AppendUint16(b, size)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(options)))
	return append(b, options...)
}

// buildQuery: one question, RD set, optionally an EDNS OPT record.
func buildQuery(id uint16, name string, qtype, qclass uint16, edns bool, size uint16) []byte {
	ar := uint16(0)
	if edns {
		ar = 1
	}
	b := header(id, 0x0100, 1, 0, 0, ar)
	b = appendName(b, nameLabels(name))
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, qclass)
	if edns {
		b = append(b, opt(size, 0, nil)...)
	}
	return b
}

type dnsMsg struct {
	id, flags, rcode              uint16
	qd, ancount, nscount, arcount int
}

func readName(m []byte, off int) (int, error) {
	jumps, end := 0, -1
	total := 0
	for {
		if off >= len(m) {
			return 0, errors.New("name runs past the end")
		}
		c := int(m[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				return end, nil
			}
			total += c + 1
			if total > 255 {
				return 0, errors.New("name longer than 255 bytes")
			}
			off += c + 1
		case 0xC0:
			if off+1 >= len(m) {
				return 0, errors.New("truncated pointer")
			}
			if end < 0 {
				end = off + 2
			}
			jumps++
			if jumps > 64 {
				return 0, errors.New("pointer loop")
			}
			off = int(binary.BigEndian.Uint16(m[off:]) & 0x3FFF)
		default:
			return 0, fmt.Errorf("bad label type %#x", c)
		}
	}
}

// parseDNS walks a whole message and fails on anything out of bounds or
// left over.
func parseDNS(m []byte) (*dnsMsg, error) {
	if len(m) < 12 {
		return nil, fmt.Errorf("%d bytes, shorter than a header", len(m))
	}
	d := &dnsMsg{id: binary.BigEndian.Uint16(m), flags: binary.BigEndian.Uint16(m[2:])}
	d.rcode = d.flags & 0xF
	d.qd = int(binary.BigEndian.Uint16(m[4:]))
	d.ancount = int(binary.BigEndian.Uint16(m[6:]))
	d.nscount = int(binary.BigEndian.Uint16(m[8:]))
	d.arcount = int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	var err error
	for i := 0; i < d.qd; i++ {
		if off, err = readName(m, off); err != nil {
			return nil, fmt.Errorf("question %d: %v", i, err)
		}
		if off += 4; off > len(m) {
			return nil, fmt.Errorf("question %d truncated", i)
		}
	}
	for i := 0; i < d.ancount+d.nscount+d.arcount; i++ {
		if off, err = readName(m, off); err != nil {
			return nil, fmt.Errorf("record %d: %v", i, err)
		}
		if off+10 > len(m) {
			return nil, fmt.Errorf("record %d header truncated", i)
		}
		rdlen := int(binary.BigEndian.Uint16(m[off+8:]))
		if off += 10 + rdlen; off > len(m) {
			return nil, fmt.Errorf("record %d data truncated", i)
		}
	}
	if off != len(m) {
		return nil, fmt.Errorf("%d bytes left over after the records", len(m)-off)
	}
	return d, nil
}

var errNoAnswer = errors.New("no answer")

// dnsExchange sends one packet and waits for one answer.
func dnsExchange(ctx context.Context, network string, port int, pkt []byte, timeout time.Duration) ([]byte, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if network == "udp" {
		if _, err := c.Write(pkt); err != nil {
			return nil, err
		}
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil {
			return nil, errNoAnswer
		}
		return buf[:n], nil
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(pkt)))
	if _, err := c.Write(append(out, pkt...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, errNoAnswer
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("answer shorter than its length prefix: %v", err)
	}
	return buf, nil
}

type dnsReq struct {
	idx      int
	class    string
	network  string
	pkt      []byte
	id       uint16
	valid    bool // a well-formed query: an answer is required
	udpLimit int  // largest UDP answer allowed (512, or the EDNS size)
	// badPrefix (TCP): the length prefix does not match the packet.
	badPrefix bool
}

func (r *dnsReq) describe() string {
	p := r.pkt
	more := ""
	if len(p) > 64 {
		p, more = p[:64], fmt.Sprintf("...(%d bytes)", len(r.pkt))
	}
	return fmt.Sprintf("#%d [%s/%s] packet %x%s", r.idx, r.network, r.class, p, more)
}

var dnsNames = []string{
	"consul.service.consul.", nodeName + ".node.consul.", nodeName + ".node.dc1.consul.",
	"web.service.consul.", "_web._tcp.service.consul.", "tag.web.service.dc1.consul.",
	"7f000001.addr.dc1.consul.", "1.0.0.127.in-addr.arpa.", "x.query.consul.", "web.connect.consul.",
	"web.ingress.consul.", "web.virtual.consul.", "consul.", "service.consul.", "node.consul.",
	"a.b.c.d.e.f.service.consul.", "WEB.SERVICE.CONSUL.", "web.service.dc2.consul.", "nope.",
}

var qtypes = []uint16{1, 28, 33, 255, 16, 12, 2, 6, 15, 5, 41, 65535, 0, 99}

func (g *gen) dnsName() ([]label, string) {
	switch g.r.IntN(8) {
	case 0:
		var ls []label
		for i := 0; i < 1+g.r.IntN(6); i++ {
			l := make([]byte, 1+g.r.IntN(63))
			for j := range l {
				l[j] = byte(g.r.UintN(256))
			}
			ls = append(ls, l)
		}
		return append(ls, label("consul")), "binary-labels"
	case 1:
		return append([]label{label(g.repeat(63)), label(g.repeat(63)), label(g.repeat(63)), label(g.repeat(63))}, label("consul")), "name-over-255"
	case 2:
		return []label{label(g.repeat(64 + g.r.IntN(128))), label("consul")}, "label-over-63"
	case 3:
		return []label{label("we\x00b"), label("service"), label("consul")}, "nul-label"
	default:
		return nameLabels(dnsNames[g.r.IntN(len(dnsNames))]), "name"
	}
}

func (g *gen) dnsRequest(idx int) *dnsReq {
	r := &dnsReq{idx: idx, network: g.pick("udp", "udp", "tcp"), udpLimit: 512}
	r.id = uint16(g.r.UintN(65536))
	ls, nameKind := g.dnsName()
	qtype := qtypes[g.r.IntN(len(qtypes))]
	if g.r.IntN(6) == 0 {
		qtype = uint16(g.r.UintN(65536))
	}
	qclass := uint16(1)
	if g.r.IntN(10) == 0 {
		qclass = []uint16{3, 4, 254, 255, 0, 77}[g.r.IntN(6)]
	}
	flags := uint16(0x0100)
	qd := uint16(1)
	r.class = nameKind
	r.valid = nameKind == "name" && qclass == 1
	switch g.r.IntN(10) {
	case 0:
		r.class += "+header"
		flags = uint16(g.r.UintN(65536))
		qd = []uint16{0, 2, 65535, 1}[g.r.IntN(4)]
		r.valid = false
	}
	var ar uint16
	var extra []byte
	if g.r.IntN(3) == 0 {
		r.class += "+edns"
		size := []uint16{0, 100, 512, 1232, 4096, 65535}[g.r.IntN(6)]
		ver := uint32(0)
		if g.r.IntN(5) == 0 {
			ver = 1 << 16 // EDNS version 1: BADVERS
		}
		var opts []byte
		switch g.r.IntN(4) {
		case 0:
			opts = []byte{0, 8, 0, 7, 0, 1, 24, 0, 127, 0, 0} // ECS
		case 1:
			opts = []byte{0, 10, 0, 3, 1, 2, 3} // cookie of a bad length
		case 2:
			opts = []byte{0, 8, 0, 40, 1} // option longer than the record
			r.valid = false
		}
		extra = opt(size, ver|uint32(g.r.UintN(2))<<15, opts)
		ar = 1
		if g.r.IntN(6) == 0 {
			extra = append(extra, extra...) // two OPT records
			ar = 2
			r.valid = false
		}
		if size > 512 {
			r.udpLimit = int(size)
		}
	}
	b := header(r.id, flags, qd, 0, 0, ar)
	b = appendName(b, ls)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, qclass)
	b = append(b, extra...)
	switch g.r.IntN(8) {
	case 0:
		r.class += "+truncated"
		b = b[:g.r.IntN(len(b))]
		r.valid = false
	case 1:
		r.class = "garbage"
		b = make([]byte, g.r.IntN(600))
		for i := range b {
			b[i] = byte(g.r.UintN(256))
		}
		r.valid = false
	case 2:
		r.class += "+pointer-loop"
		b = header(r.id, 0x0100, 1, 0, 0, 0)
		b = append(b, 0xC0, 12, 0, 1, 0, 1)
		r.valid = false
	case 3:
		if r.network == "tcp" {
			r.class += "+bad-length-prefix"
			r.badPrefix = true
			r.valid = false
		}
	}
	r.pkt = b
	return r
}

// send runs one DNS request; it returns "" or why the exchange failed the
// pass criteria, and the outcome for the histogram.
func (r *dnsReq) send(ctx context.Context, port int) (outcome, failure string) {
	var resp []byte
	var err error
	if r.badPrefix {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, derr := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if derr != nil {
			return "connect-error", "TCP connect: " + derr.Error()
		}
		c.SetDeadline(time.Now().Add(1 * time.Second))
		pre := binary.BigEndian.AppendUint16(nil, uint16(len(r.pkt)+1+int(r.id%200)))
		c.Write(append(pre, r.pkt...))
		io.ReadAll(c) // whatever comes (likely nothing before the deadline)
		c.Close()
		return "sent-bad-prefix", ""
	}
	tries := 1
	if r.network == "udp" && r.valid {
		tries = 2
	}
	for i := 0; i < tries; i++ {
		resp, err = dnsExchange(ctx, r.network, port, r.pkt, 2*time.Second)
		if err == nil {
			break
		}
	}
	if err != nil {
		if errors.Is(err, errNoAnswer) {
			if r.valid {
				return "no-answer", "a well-formed query got no answer"
			}
			return "no-answer", ""
		}
		if r.valid {
			return "error", err.Error()
		}
		return "error", ""
	}
	m, perr := parseDNS(resp)
	if perr != nil {
		return "malformed", fmt.Sprintf("malformed answer (%d bytes): %v", len(resp), perr)
	}
	if len(r.pkt) >= 2 && m.id != binary.BigEndian.Uint16(r.pkt) {
		return "bad-id", fmt.Sprintf("answer id %#x, query id %#x", m.id, binary.BigEndian.Uint16(r.pkt))
	}
	if m.flags&0x8000 == 0 {
		return "not-a-response", "answer without the QR bit"
	}
	if r.network == "udp" && len(resp) > r.udpLimit {
		return "oversize", fmt.Sprintf("UDP answer of %d bytes, over the %d the query allows", len(resp), r.udpLimit)
	}
	return fmt.Sprintf("rcode-%d", m.rcode), ""
}
