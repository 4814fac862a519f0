package proxy

import (
	"container/heap"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// maxTimerWait bounds how long the registry's timer sleeps. Expiries are
// wall-clock dates while a timer runs on the monotonic clock, so a step of
// the system clock (NTP, a resumed VM) is noticed within this time.
const maxTimerWait = time.Minute

// timed is the part of the registry that acts on dates: sessions ordered
// by their credential's expiry, the organisation's grace date, and the
// one timer set for whichever comes first. Guarded by Registry.mu.
type timed struct {
	expiry   expiryHeap
	grace    time.Time // zero: no grace period is running
	stop     func() bool
	armedFor time.Time
	armings  uint64 // tells a stale timer from the armed one
	closed   bool
}

// ApplyPolicy tells the registry the organisation's policy. When two-step
// verification is required with a grace period, every session that logged
// in with an account password ends as the grace period does: authstore
// admits those only during the grace period then, and a user who set up a
// second factor has no such session left. Call it at start and after every
// change (authstore.Options.OnPolicy).
func (r *Registry) ApplyPolicy(p authstore.Policy) {
	until := p.GraceUntil
	if !p.MFARequired {
		until = time.Time{}
	}
	r.setGrace(until)
}

// setGrace sets the grace date; zero: none is running.
func (r *Registry) setGrace(until time.Time) {
	r.mu.Lock()
	r.grace = until
	r.rearm()
	r.mu.Unlock()
}

// Close stops the registry's timer; live sessions are not touched.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.rearm()
	r.mu.Unlock()
}

func (r *Registry) pushExpiry(l *live) {
	heap.Push(&r.expiry, l)
	r.rearm()
}

func (r *Registry) dropExpiry(l *live) {
	if l.heapAt >= 0 {
		heap.Remove(&r.expiry, l.heapAt)
		r.rearm()
	}
}

// next is the earliest date the registry must act on; zero: none.
func (r *Registry) next() time.Time {
	t := r.grace
	if len(r.expiry) > 0 && (t.IsZero() || r.expiry[0].expires.Before(t)) {
		t = r.expiry[0].expires
	}
	return t
}

// rearm sets the timer for the earliest date, unless it is set for it
// already. r.mu must be held.
func (r *Registry) rearm() {
	next := r.next()
	if r.closed {
		next = time.Time{}
	}
	if r.stop != nil && next.Equal(r.armedFor) {
		return
	}
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.armedFor = next
	if next.IsZero() {
		return
	}
	wait := min(max(next.Sub(r.clock.Now()), 0), maxTimerWait)
	r.armings++
	arming := r.armings
	r.stop = r.clock.AfterFunc(wait, func() { r.fire(arming) })
}

// fire ends what is due: sessions whose app password expired, and every
// account-password session once the grace date passed.
func (r *Registry) fire(arming uint64) {
	r.mu.Lock()
	if arming != r.armings {
		r.mu.Unlock() // stopped too late: a newer timer is set
		return
	}
	r.stop = nil
	now := r.clock.Now()
	var expired []*live
	for len(r.expiry) > 0 && !now.Before(r.expiry[0].expires) {
		expired = append(expired, heap.Pop(&r.expiry).(*live))
	}
	graceOver := !r.grace.IsZero() && !now.Before(r.grace)
	if graceOver {
		r.grace = time.Time{}
	}
	r.rearm()
	r.mu.Unlock()
	endAll(expired, reasonExpired)
	if graceOver {
		r.kick(Filter{PasswordOnly: true}, reasonGraceEnded)
	}
}

// expiryHeap orders sessions by expiry (container/heap).
type expiryHeap []*live

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt, h[j].heapAt = i, j
}

func (h *expiryHeap) Push(x any) {
	l := x.(*live)
	l.heapAt = len(*h)
	*h = append(*h, l)
}

func (h *expiryHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.heapAt = -1
	*h = old[:len(old)-1]
	return l
}
