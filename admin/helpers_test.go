package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fakeclock"
	"github.com/postern-dev/postern/proxy"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 15, 0, time.UTC)

// liveSessions is the proxy's registry, with sessions planted in it the
// way a front-end tracks them; a kick removes the session, as the end of a
// real one does.
type liveSessions struct{ *proxy.Registry }

func (l liveSessions) add(t *testing.T, infos ...proxy.SessionInfo) {
	t.Helper()
	for _, si := range infos {
		var mu sync.Mutex
		var release func()
		mu.Lock()
		rel, err := l.Track(si, l.Mark(), func(string) {
			mu.Lock()
			defer mu.Unlock()
			release()
		})
		release = rel
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rel)
	}
}

type env struct {
	t      *testing.T
	st     *authstore.Store
	srv    *Server
	clock  *fakeclock.Clock
	live   liveSessions
	sleeps *fakeclock.Sleeps // the clock stands still while the store sleeps
	router routers.Router

	mu   sync.Mutex
	hits map[string]bool // "METHOD path-pattern" answered 2xx
}

type envOption func(*authstore.Options, *Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	keys, err := authstore.NewKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: fakeclock.New(epoch), live: liveSessions{proxy.NewRegistry()}, sleeps: fakeclock.NewSleeps(nil), hits: map[string]bool{}}
	so := authstore.Options{Keys: keys, KDF: authstore.KDFParams{Memory: 64, Time: 1, Threads: 1},
		LockTimeout: 100 * time.Millisecond, Clock: e.clock, Sleep: e.sleeps.Sleep}
	cfg := Config{Sessions: e.live, Clock: e.clock}
	for _, o := range opts {
		o(&so, &cfg)
	}
	e.st, err = authstore.Open(filepath.Join(t.TempDir(), "postern.db"), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	cfg.Store = e.st
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.router = docRouter(t, e.srv)
	return e
}

func docRouter(t *testing.T, s *Server) routers.Router {
	t.Helper()
	for _, ct := range []string{"image/png", "text/plain", "application/x-ndjson"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	doc, err := openapi3.NewLoader().LoadFromData(s.openapi)
	if err != nil {
		t.Fatalf("load openapi: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi document invalid: %v", err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var bg = context.Background()

func (e *env) ctx() context.Context {
	return authstore.WithActor(bg, authstore.Actor{Name: "test"})
}

// user creates an account; role "" is a plain user.
func (e *env) user(name, password string, role authstore.Role) {
	e.t.Helper()
	if _, err := e.st.CreateUser(e.ctx(), authstore.NewUser{Name: name, Password: password, Role: role}); err != nil {
		e.t.Fatal(err)
	}
}

// totpUser turns two-step on for name and returns the secret.
func (e *env) totpUser(name string) string {
	e.t.Helper()
	enr, err := e.st.BeginTOTP(e.ctx(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.ConfirmTOTP(e.ctx(), name, e.code(enr.Secret)); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second) // the next code is a later step
	return enr.Secret
}

func (e *env) code(secret string) string {
	e.t.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) token(name string, role authstore.Role, user string) string {
	e.t.Helper()
	_, secret, err := e.st.CreateToken(e.ctx(), authstore.NewToken{Name: name, Role: role, User: user})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// client is one browser or API caller.
type client struct {
	e      *env
	cookie string
	csrf   string
	token  string
	remote string
	header http.Header // extra request headers
}

func (e *env) client() *client {
	return &client{e: e, remote: "192.0.2.10:40000", header: http.Header{}}
}

func (e *env) tokenClient(token string) *client {
	c := e.client()
	c.token = token
	return c
}

type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r *resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r *resp) errCode() string {
	var b api.ErrorBody
	json.Unmarshal(r.body, &b)
	return string(b.Error.Code)
}

// do sends one request, follows the session cookie and CSRF token, and
// checks the answer against the OpenAPI document.
func (c *client) do(method, path string, body any) *resp {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, "https://postern.test"+path, rd)
	req.RemoteAddr = c.remote
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: c.cookie})
	}
	if c.csrf != "" && !safeMethod(method) {
		req.Header.Set(csrfHeader, c.csrf)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	rec := httptest.NewRecorder()
	c.e.srv.Handler().ServeHTTP(rec, req)
	r := &resp{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == cookieName {
			c.cookie = ck.Value
		}
	}
	var withCSRF struct {
		CSRF string `json:"csrf_token"`
	}
	if json.Unmarshal(r.body, &withCSRF) == nil && withCSRF.CSRF != "" {
		c.csrf = withCSRF.CSRF
	}
	c.e.checkAgainstDoc(req, r)
	return r
}

// page sends one page request as c; form is nil for a GET.
func (c *client) page(method, path string, form url.Values, header http.Header) *httptest.ResponseRecorder {
	c.e.t.Helper()
	var req *http.Request
	if form == nil {
		req = httptest.NewRequest(method, "https://postern.test"+path, nil)
	} else {
		req = httptest.NewRequest(method, "https://postern.test"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.RemoteAddr = c.remote
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header[k] = v
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: c.cookie})
	}
	rec := httptest.NewRecorder()
	c.e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// checkAgainstDoc validates a real answer against the OpenAPI document
// and notes which routes answered 2xx.
func (e *env) checkAgainstDoc(req *http.Request, r *resp) {
	e.t.Helper()
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		if r.code != http.StatusNotFound {
			e.t.Errorf("%s %s answered %d but is not in the document", req.Method, req.URL.Path, r.code)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.code, Header: r.header,
		Body: io.NopCloser(bytes.NewReader(r.body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(bg, out); err != nil {
		e.t.Errorf("%s %s: answer %d does not match the document: %v\n%s", req.Method, req.URL.Path, r.code, err, r.body)
	}
	if r.code < 300 {
		e.mu.Lock()
		e.hits[req.Method+" "+route.Path] = true
		e.mu.Unlock()
	}
}

func (c *client) must(want int, method, path string, body any) *resp {
	c.e.t.Helper()
	r := c.do(method, path, body)
	if r.code != want {
		c.e.t.Fatalf("%s %s: got %d %s, want %d", method, path, r.code, r.body, want)
	}
	return r
}

// signIn signs a browser in with a password (and a code when the user has
// a second factor).
func (c *client) signIn(user, password, totpSecret string) {
	c.e.t.Helper()
	r := c.must(200, "POST", "/api/v1/session", map[string]string{"username": user, "password": password})
	if totpSecret == "" {
		return
	}
	var st api.SignInResponse
	r.decode(c.e.t, &st)
	if st.State != stateSecondFactor {
		c.e.t.Fatalf("state %q, want second_factor", st.State)
	}
	c.must(200, "POST", "/api/v1/session/second-factor", map[string]string{"code": c.e.code(totpSecret)})
	c.e.clock.Advance(30 * time.Second)
}

// concrete fills a route pattern's wildcards.
func concrete(path string) string {
	r := strings.NewReplacer("{user}", "alice", "{id}", "0123456789abcdef")
	return r.Replace(path)
}

func mustAddr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func (e *env) auditCount() int {
	e.t.Helper()
	e.st.FlushAudit()
	n, err := e.st.VerifyAudit(bg)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) eventsSince(n int) []authstore.Event {
	e.t.Helper()
	e.st.FlushAudit()
	evs, err := e.st.AuditTail(bg, e.auditCount()-n)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func fmtEvents(evs []authstore.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\n  %s actor=%s user=%s result=%s", ev.Kind, ev.Actor, ev.User, ev.Result)
	}
	return b.String()
}

func jsonBody(v any) io.Reader {
	data, _ := json.Marshal(v)
	return bytes.NewReader(data)
}

func decodeBody(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
