package dav

import (
	"context"
	"crypto/subtle"
	"net"
	"sync"
)

// connState remembers, per client connection, the credential last accepted
// on it: a keep-alive connection is one sign-in, so repeats of that
// credential are authenticated in full but audited once (Attempt.Renewal).
type connState struct {
	mu     sync.Mutex
	user   string
	secret []byte
}

type connKey struct{}

// ConnContext gives each client connection its state; set it as the
// http.Server's ConnContext. Without it every request is audited.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}

func connStateOf(ctx context.Context) *connState {
	cs, _ := ctx.Value(connKey{}).(*connState)
	return cs
}

// renewal reports whether user and secret were accepted last on this
// connection.
func (cs *connState) renewal(user, secret string) bool {
	if cs == nil {
		return false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.secret != nil && subtle.ConstantTimeCompare([]byte(cs.user), []byte(user))&
		subtle.ConstantTimeCompare(cs.secret, []byte(secret)) == 1
}

// settle records the outcome of a request's authentication.
func (cs *connState) settle(user, secret string, ok bool) {
	if cs == nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clear(cs.secret)
	cs.user, cs.secret = "", nil
	if ok {
		cs.user, cs.secret = user, []byte(secret)
	}
}
