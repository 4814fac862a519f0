package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// IdleConfig describes idle sessions: logged in, mailbox selected, in IDLE.
type IdleConfig struct {
	Target   Target
	Accounts []Account // used in turn
	Mailbox  string
	// Parallel is how many sessions are being opened at once.
	Parallel int
}

// Holder keeps idle sessions open.
type Holder struct {
	cfg   IdleConfig
	mu    sync.Mutex
	conns []*Conn
}

// NewHolder returns a holder with no sessions.
func NewHolder(cfg IdleConfig) *Holder {
	cfg.Parallel = max(cfg.Parallel, 1)
	return &Holder{cfg: cfg}
}

// Len is the number of sessions held.
func (h *Holder) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Grow opens sessions until n are held. It stops at the first failure;
// the sessions opened so far stay held.
func (h *Holder) Grow(ctx context.Context, n int) error {
	first := h.Len()
	if n <= first {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(h.cfg.Parallel, n-first) {
		wg.Go(func() {
			for i := range next {
				if err := h.open(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := first; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("open idle session %d of %d: %w", h.Len()+1, n, err)
	}
	return nil
}

func (h *Holder) open(ctx context.Context, i int) error {
	if ctx.Err() != nil {
		return nil // another session failed first
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a := h.cfg.Accounts[i%len(h.cfg.Accounts)]
	c, err := Dial(ctx, h.cfg.Target, i)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = c.Login(a.User, a.Password)
	if err == nil {
		err = c.Command("SELECT " + quote(h.cfg.Mailbox))
	}
	if err == nil {
		err = c.Idle()
	}
	if err != nil || !stop() {
		c.Close()
		return errors.Join(err, ctx.Err())
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return nil
}

// Alive counts the held sessions whose connection the far end has not
// closed. It peeks without blocking, so it neither disturbs the sessions
// nor waits on them.
func (h *Holder) Alive() (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	alive := 0
	for _, c := range h.conns {
		ok, err := open(c)
		if err != nil {
			return alive, err
		}
		if ok {
			alive++
		}
	}
	return alive, nil
}

// open reports whether the peer has not closed c: a non-blocking peek sees
// either nothing to read yet or pending data (an IDLE notification), but
// not the end of the stream or an error.
func open(c *Conn) (bool, error) {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return false, fmt.Errorf("connection %T has no descriptor", c.raw)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var buf [1]byte
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n > 0 || errors.Is(err, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return alive, err
}

// Close closes every held session.
func (h *Holder) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// Conns returns the held connections, for callers that watch them.
func (h *Holder) Conns() []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Conn(nil), h.conns...)
}
