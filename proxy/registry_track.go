package proxy

import "sync"

// Mark returns a token for Track: kicks after it apply to the request being
// authenticated, so that a revocation between the credential check and
// Track is not missed. A front-end logs in through Admit, which marks for
// it; Mark and Track serve what registers a session without a login (a
// gateway's tests, tools).
func (r *Registry) Mark() uint64 { return r.mark() }

// Track registers a live request of a front-end that authenticates every
// request (DAV) so that kicks reach it: end is called once, from the kicking
// goroutine, and must only start ending the request (cancel its context).
// Track refuses (and does not call end) when a kick since mark matches info.
// release removes the request; it must be called when the request is over.
func (r *Registry) Track(info SessionInfo, mark uint64, end func(reason string)) (release func(), err error) {
	t := &tracked{si: info, stop: end}
	if err := r.add(t, mark); err != nil {
		return nil, err
	}
	return func() { r.remove(info.ID) }, nil
}

// tracked is a registry entry for one request.
type tracked struct {
	si   SessionInfo
	once sync.Once
	stop func(reason string)
}

func (t *tracked) info() SessionInfo { return t.si }

func (t *tracked) end(reason Reason) bool {
	ended := false
	t.once.Do(func() {
		ended = true
		t.stop(reason.Text)
	})
	return ended
}
