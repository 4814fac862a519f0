package admin

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"github.com/postern-dev/postern/admin/api"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// The session cookie, the CSRF header and the states are the contract's
// (admin/api); HTML forms send the token in the field csrfField.
const (
	cookieName = api.CookieName
	csrfHeader = api.CSRFHeader
	csrfField  = "csrf_token"
)

// Session states.
const (
	stateSecondFactor = api.StateSecondFactor
	stateEnroll       = api.StateEnroll
	stateSignedIn     = api.StateSignedIn
)

// tokenBytes is the randomness of a session id or a CSRF token: 128 bits.
const tokenBytes = 16

// sessionIDLen is the length of a session id (tokenBytes in unpadded
// base64): a cookie of another length is refused before the store is asked.
var sessionIDLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// pendingTimeout bounds a half-done sign-in.
const pendingTimeout = 10 * time.Minute

// session is a live web session.
type session struct {
	ID string // the cookie value
	authstore.WebSession
}

// liveState is what the server keeps in memory about a session, read on
// the injected (monotonic) clock: the store only has wall-clock times and
// is written at sign-in, re-verification and sign-out only.
type liveState struct {
	began, seen, reauth time.Time
	qr                  []byte // the enrolling session's QR code
}

type liveTable struct {
	mu sync.Mutex
	m  map[string]*liveState
}

func newLiveTable() *liveTable { return &liveTable{m: map[string]*liveState{}} }

func (t *liveTable) get(id string) (liveState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[id]
	if !ok {
		return liveState{}, false
	}
	return *l, true
}

func (t *liveTable) update(id string, fn func(*liveState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.m[id]; ok {
		fn(l)
	}
}

func (t *liveTable) put(id string, l liveState) {
	t.mu.Lock()
	t.m[id] = &l
	t.mu.Unlock()
}

func (t *liveTable) remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// sweep forgets sessions idle past limit; called at each sign-in so that
// abandoned sign-ins do not pile up.
func (t *liveTable) sweep(now time.Time, limit time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, l := range t.m {
		if now.Sub(l.seen) >= limit {
			delete(t.m, id)
		}
	}
}

func randomToken(r io.Reader) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sessionOf returns the request's live cookie session; it ends a session
// past its idle or absolute timeout (server-side) and notes activity.
func (s *Server) sessionOf(r *http.Request) (*session, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) != sessionIDLen {
		return nil, errUnauthenticated
	}
	ws, err := s.store.GetWebSession(r.Context(), ck.Value)
	if errors.Is(err, authstore.ErrNotFound) {
		s.live.remove(ck.Value)
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock.Now()
	l, ok := s.live.get(ck.Value)
	if !ok { // not seen since a restart: count from the stored times
		l = liveState{began: ws.Created, seen: ws.Written}
		if ws.Seen.After(l.seen) {
			l.seen = ws.Seen
		}
	}
	absolute := s.cfg.AbsoluteTimeout
	if ws.State == stateSecondFactor {
		absolute = pendingTimeout
	}
	if now.Sub(l.began) >= absolute || now.Sub(l.seen) >= s.cfg.IdleTimeout {
		s.endSession(r.Context(), ck.Value)
		return nil, errUnauthenticated
	}
	l.seen = now
	s.live.put(ck.Value, l)
	return &session{ID: ck.Value, WebSession: ws}, nil
}

// issue starts a session (or its next state) for user with a fresh id
// and CSRF token, replacing the session old (rotation). reauth marks the
// caller as just verified. The caller sends the new cookie (setSessionCookie).
func (s *Server) issue(ctx context.Context, user, state string, old *session, reauth bool) (*session, error) {
	id, err := randomToken(s.cfg.Rand)
	if err != nil {
		return nil, err
	}
	csrf, err := randomToken(s.cfg.Rand)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock.Now()
	ws := authstore.WebSession{User: user, State: state, CSRF: csrf, Created: now.UTC()}
	l := liveState{began: now, seen: now}
	replaces := ""
	if old != nil {
		replaces = old.ID
		ol, ok := s.live.get(old.ID)
		if !ok { // not seen since a restart
			ol = liveState{began: old.Created}
		}
		l.reauth, l.qr = ol.reauth, ol.qr
		if old.State != stateSecondFactor {
			// A finished sign-in keeps its start: the absolute timeout
			// runs from there across every rotation.
			l.began, ws.Created = ol.began, old.Created
		}
	}
	if reauth {
		l.reauth = now
		ws.ReauthAt = now.UTC()
	}
	if err := s.store.PutWebSession(ctx, id, ws, replaces); err != nil {
		return nil, err
	}
	if old != nil {
		s.live.remove(old.ID)
	}
	s.live.sweep(now, s.cfg.IdleTimeout)
	s.live.put(id, l)
	return &session{ID: id, WebSession: ws}, nil
}

// setSessionCookie gives the browser a session's cookie: after every sign-in
// step and re-verification, which rotate the id.
func setSessionCookie(w http.ResponseWriter, sess *session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess.ID, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
}

// Close saves the last activity of the sessions seen since the start, so
// that after a restart they are not ended as idle. Call it at shutdown,
// after the listeners stopped and before the store closes.
func (s *Server) Close(ctx context.Context) error {
	s.live.mu.Lock()
	seen := make(map[string]time.Time, len(s.live.m))
	for id, l := range s.live.m {
		seen[id] = l.seen.Round(0)
	}
	s.live.mu.Unlock()
	return s.store.SaveWebSessionActivity(ctx, seen)
}

// endSession signs a session out on the server side.
func (s *Server) endSession(ctx context.Context, id string) error {
	s.live.remove(id)
	return s.store.DeleteWebSession(ctx, id)
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// reauthFresh tells whether the session re-verified (or signed in) within
// the re-verification window, on the monotonic clock (W1). After a restart
// the window is gone: the in-memory reading is the only one trusted.
func (s *Server) reauthFresh(sess *session) bool {
	l, ok := s.live.get(sess.ID)
	return ok && !l.reauth.IsZero() && s.cfg.Clock.Now().Sub(l.reauth) < s.cfg.ReauthWindow
}

// reauthUntil is when the session's re-verification window closes (zero
// when it is closed).
func (s *Server) reauthUntil(sess *session) time.Time {
	l, ok := s.live.get(sess.ID)
	if !ok || l.reauth.IsZero() {
		return time.Time{}
	}
	until := l.reauth.Add(s.cfg.ReauthWindow)
	if !s.cfg.Clock.Now().Before(until) {
		return time.Time{}
	}
	return until.UTC().Round(0)
}

// checkCSRF guards a cookie session's state change: the session's CSRF
// token, which the request carries as tok, and, when the browser says
// where the request comes from, the same origin.
func (s *Server) checkCSRF(r *http.Request, sess *session, tok string) error {
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) != 1 {
		return errCSRF
	}
	return nil
}

// csrfOf is the CSRF token a JSON request carries: the header, or an HTML
// form's field.
func csrfOf(r *http.Request) string {
	tok := r.Header.Get(csrfHeader)
	if tok == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
		tok = r.PostFormValue(csrfField)
	}
	return tok
}

// checkOrigin refuses a state change a browser marks as cross-site:
// Sec-Fetch-Site other than same-origin, or an Origin that is not this
// server. Requests without either header (not from a browser) pass; for
// cookie sessions the CSRF token still has to match.
func (s *Server) checkOrigin(r *http.Request) error {
	if safeMethod(r.Method) {
		return nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		// A browser's own word, which no page can forge. Origin is then
		// "null" for a form sent under Referrer-Policy: no-referrer, as
		// every page is served.
		return nil
	case "":
	default:
		return errCSRF
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || !strings.EqualFold(u.Host, r.Host) {
		return errCSRF
	}
	if u.Scheme != "https" && !(s.cfg.Plain && u.Scheme == "http") {
		return errCSRF
	}
	return nil
}
