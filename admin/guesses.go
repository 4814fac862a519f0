package admin

import (
	"net/netip"
	"sync"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// The store slows a source down by its settled failures (A2), so parallel
// guesses from one address all pass before the first of them fails: 200 at
// once were 200 guesses at full speed. The mail listeners cap connections
// per address; the admin listener caps the requests that spend a guess
// (Route.Guesses) per address instead.

// maxGuessesPerSource is how many guess-spending requests one address (an
// IPv4 host, an IPv6 /64) may have in flight. A person signs in one step at
// a time, and a household or an office behind one address rarely has
// more than a few at the same moment; it is below the store's free
// failures (5), so no burst outruns the first delay.
const maxGuessesPerSource = 4

// errBusy answers a guess over the cap. It says nothing about the account
// or the secret, only about the address, so it is no oracle (A9).
var errBusy = &api.Error{Code: api.Throttled, Message: "too many sign-ins from this address at once; try again in a moment",
	RetryAfter: 2}

// guessGate counts the guess-spending requests in flight per source.
type guessGate struct {
	mu sync.Mutex
	n  map[netip.Prefix]int
}

func newGuessGate() *guessGate { return &guessGate{n: map[netip.Prefix]int{}} }

// enter takes a slot for src; ok is false when src has none left. The
// caller calls release when its request is done.
func (g *guessGate) enter(src netip.Addr) (release func(), ok bool) {
	key := authstore.SourcePrefix(src)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[key] >= maxGuessesPerSource {
		return nil, false
	}
	g.n[key]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.n[key]--; g.n[key] <= 0 {
			delete(g.n, key)
		}
	}, true
}
