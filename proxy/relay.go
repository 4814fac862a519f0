package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// relayChunk is how many bytes one copy call moves before it returns to
	// count them. It is small enough that a slow but live reader completes a
	// chunk long before the idle timeout (256 KiB in 10 min is 0.4 KB/s) and
	// large enough that the per-call cost vanishes next to the copy.
	relayChunk = 256 << 10
	// relayBufSize is the buffer of connections that cannot splice (TLS):
	// one TLS record's worth. A TLS read returns at most one record anyway,
	// and each buffer lingers in the pool after a burst, so 32 KiB only
	// doubled the memory of a freshly busy session (bench/RESULTS.md).
	relayBufSize = 16 << 10
)

// relay copies bytes both ways until both directions ended or the session
// is ended. The session's goroutine carries upstream-to-client and says Bye,
// so no other goroutine writes to the client at the same time; one more
// goroutine carries client-to-upstream. Nothing keeps up (and its buffers)
// once the pumps exist.
func (s *session) relay(fe Frontend, c, up *Conn) {
	client, pending := c.Conn, buffered(c.R)
	if f, ok := fe.(RelayFilter); ok {
		client, pending = f.FilterRelay(c.Conn, pending), nil
	}
	toUp := s.newPump(client, up.Conn, &s.bytesIn, "in", pending)
	toClient := s.newPump(up.Conn, client, &s.bytesOut, "out", buffered(up.R))
	toUp.other, toClient.other = toClient, toUp
	// The front-end keeps c for Bye; what it needs for that fits in a small
	// writer, and nothing may read from c any more.
	c.R = bufio.NewReaderSize(strings.NewReader(""), 16)
	c.W = bufio.NewWriterSize(c.Conn, 128)
	done := make(chan struct{})
	go func() {
		defer close(done)
		toUp.run()
	}()
	toClient.run()
	if !s.ending.Load() {
		<-done // the upstream finished sending; the client may still talk
	}
	s.bye(fe)
	s.raw.Close()
	s.mu.Lock()
	s.upRaw.Close()
	s.mu.Unlock()
	<-done
}

// buffered returns what r read ahead; the relay sends it first.
func buffered(r *bufio.Reader) []byte {
	if r.Buffered() == 0 {
		return nil // a zero-length slice would still pin the buffer
	}
	b, _ := r.Peek(r.Buffered())
	return b
}

// pump carries one direction of a relay.
type pump struct {
	s        *session
	src, dst net.Conn
	splice   bool // both ends are plain TCP: the kernel copies
	idle     time.Duration
	park     time.Duration
	count    *atomic.Int64
	metric   prometheus.Counter // nil without metrics
	pending  []byte             // read ahead before the relay, sent first
	other    *pump

	// last is when this direction last reported moved bytes (Unix ns).
	last atomic.Int64
	// parked is true while the pump holds no unreported bytes: waiting in
	// a one-byte read, or finished.
	parked atomic.Bool
	one    [1]byte
}

func (s *session) newPump(src, dst net.Conn, count *atomic.Int64, direction string, pending []byte) *pump {
	lim := s.srv.lim
	p := &pump{
		s: s, src: src, dst: dst, splice: isTCP(src) && isTCP(dst),
		idle: lim.IdleTimeout, park: min(s.srv.park, lim.IdleTimeout/2),
		count: count, metric: s.srv.cfg.Metrics.relayCounter(s.srv.proto, direction),
		pending: pending,
	}
	p.last.Store(time.Now().UnixNano())
	return p
}

func isTCP(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok
}

// run copies until the source ends, the session ends or it is idle.
//
// A copy call blocks with a buffer (TLS) or a splice pipe (TCP) in hand, so
// after park without traffic the pump falls back to a one-byte read that
// holds neither: an idle session costs its two goroutines and little else.
// Idle time is judged only while both directions are parked or finished,
// because a copy in progress may have moved bytes it has not reported yet.
func (p *pump) run() {
	defer p.parked.Store(true)
	pending := p.pending
	p.pending = nil
	if len(pending) > 0 && !p.send(pending) {
		return
	}
	quiet := false
	for {
		if quiet && !p.wait() {
			return
		}
		start := time.Now()
		p.src.SetReadDeadline(start.Add(p.park))
		// A write blocked this long means a peer that stopped reading: as
		// idle as one that stopped talking.
		p.dst.SetWriteDeadline(start.Add(p.idle))
		if p.s.ending.Load() {
			return
		}
		err := p.copy()
		switch {
		case p.s.ending.Load():
			return
		case err == nil:
			quiet = false
		case isTimeout(err) && time.Since(start) >= p.idle:
			p.s.end(reasonIdle)
			return
		case isTimeout(err):
			quiet = true
		default:
			p.finish(err)
			return
		}
	}
}

// copy moves up to relayChunk bytes. Without splicing it reports each
// write at once, so a session listing shows the bytes of a quiet session
// that has not parked yet.
func (p *pump) copy() error {
	if p.splice {
		// net.TCPConn.ReadFrom splices from an *io.LimitedReader over a
		// TCPConn; a counting wrapper around either end would not.
		n, err := io.CopyN(p.dst, p.src, relayChunk)
		p.moved(n)
		return err
	}
	bp := p.s.srv.bufs.Get().(*[]byte)
	defer p.s.srv.bufs.Put(bp)
	var total int64
	for total < relayChunk {
		n, err := p.src.Read(*bp)
		if n > 0 {
			w, werr := p.dst.Write((*bp)[:n])
			total += int64(w)
			p.moved(int64(w))
			if werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wait blocks in a one-byte read until the source has data, and forwards
// that byte. It reports false when the pump must stop.
func (p *pump) wait() bool {
	p.parked.Store(true)
	for {
		deadline := time.Unix(0, p.lastMove()).Add(p.idle)
		if soon := time.Now().Add(p.park); deadline.Before(soon) {
			deadline = soon // the other direction is still copying
		}
		p.src.SetReadDeadline(deadline)
		if p.s.ending.Load() {
			return false
		}
		n, err := p.src.Read(p.one[:])
		if n == 1 {
			p.parked.Store(false)
			return p.send(p.one[:])
		}
		switch {
		case err == nil:
		case p.s.ending.Load():
			return false
		case isTimeout(err):
			if p.idleNow() {
				p.s.end(reasonIdle)
				return false
			}
		default:
			p.finish(err)
			return false
		}
	}
}

// send writes b to the destination.
func (p *pump) send(b []byte) bool {
	p.dst.SetWriteDeadline(time.Now().Add(p.idle))
	if p.s.ending.Load() {
		return false
	}
	n, err := p.dst.Write(b)
	p.moved(int64(n))
	switch {
	case err == nil:
		return true
	case isTimeout(err) && !p.s.ending.Load():
		p.s.end(reasonIdle)
	default:
		p.finish(err)
	}
	return false
}

// finish ends this direction: at the source's end of stream it passes the
// half-close on and leaves the other direction running; any other failure
// ends the session.
func (p *pump) finish(err error) {
	if errors.Is(err, io.EOF) {
		if cw, ok := p.dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		return
	}
	p.s.stop()
}

func (p *pump) moved(n int64) {
	if n <= 0 {
		return
	}
	p.count.Add(n)
	if p.metric != nil {
		p.metric.Add(float64(n))
	}
	p.last.Store(time.Now().UnixNano())
}

func (p *pump) lastMove() int64 {
	return max(p.last.Load(), p.other.last.Load())
}

// idleNow reports whether neither direction moved for the idle timeout. The
// other pump's parked flag is read before the times: it is set after its
// last report, so a parked pump's bytes are all in last.
func (p *pump) idleNow() bool {
	if !p.other.parked.Load() {
		return false
	}
	return time.Since(time.Unix(0, p.lastMove())) >= p.idle
}
