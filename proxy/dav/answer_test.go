package dav

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// countingBody is a request body that tells how much of it was read.
type countingBody struct {
	r    io.Reader
	read int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { return nil }

// TestOwnAnswersReadTheBody: every answer postern gives itself reads the
// request body first, up to maxEarlyBody, and past that closes the
// connection; a client waiting for 100-continue is not asked for it.
func TestOwnAnswersReadTheBody(t *testing.T) {
	down := &fakeAuth{err: fmt.Errorf("disk: %w", authstore.ErrUnavailable)}
	up := &fakeAuth{user: "alice", secret: "pw"}
	tests := []struct {
		name       string
		auth       *fakeAuth
		target     string
		hdr        []string
		size, want int
		wantRead   int
		close      bool
	}{
		{"discovery", up, "/.well-known/caldav", nil, 300, 301, 300, false},
		{"no credentials", up, "/dav/calendars/", nil, 300, 401, 300, false},
		{"wrong password", up, "/dav/calendars/", []string{"Authorization", "Basic YWxpY2U6bm9wZQ=="}, 300, 401, 300, false},
		{"two Authorization headers", up, "/dav/calendars/", []string{"Authorization", "Basic YTpi", "Authorization", "Basic YTpi"}, 300, 400, 300, false},
		{"path not canonical", up, "/dav/calendars/../contacts/", nil, 300, 400, 300, false},
		{"store down", down, "/dav/calendars/", []string{"Authorization", "Basic YWxpY2U6cHc="}, 300, 503, 300, false},
		{"large body", up, "/.well-known/caldav", nil, 3 * maxEarlyBody, 301, maxEarlyBody + 1, true},
		{"100-continue", up, "/dav/calendars/", []string{"Expect", "100-continue"}, 300, 401, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, tt.auth, http.NotFoundHandler(), nil)
			body := &countingBody{r: strings.NewReader(strings.Repeat("x", tt.size))}
			r := httptest.NewRequest("PROPFIND", tt.target, body)
			for i := 0; i < len(tt.hdr); i += 2 {
				r.Header.Add(tt.hdr[i], tt.hdr[i+1])
			}
			w := httptest.NewRecorder()
			env.h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if body.read != tt.wantRead {
				t.Errorf("read %d bytes of the body before answering, want %d", body.read, tt.wantRead)
			}
			if got := w.Header().Get("Connection") == "close"; got != tt.close {
				t.Errorf("Connection: close %v, want %v", got, tt.close)
			}
		})
	}
}

// TestUpstreamGetsCanonicalRequest: the upstream gets the checked path in
// the default encoding, the query, and no client copy of a header it
// trusts in any spelling (P8, P11).
func TestUpstreamGetsCanonicalRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
	}), nil)
	req, _ := http.NewRequest("PUT", env.url+"/dav/calendars/alice/%41b%40c.ics?x=%2e", strings.NewReader("BEGIN:VCALENDAR"))
	req.SetBasicAuth("alice", "s3cret")
	for _, k := range []string{"X_Remote_User", "x_remote_user", "X-REMOTE_USER", "X_Forwarded_For", "Proxy_Authorization", "Forwarded"} {
		req.Header[k] = []string{"bob"}
	}
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-got
	if r.RequestURI != "/dav/calendars/alice/Ab@c.ics?x=%2e" {
		t.Errorf("upstream request target %q", r.RequestURI)
	}
	if v := r.Header.Values("X-Remote-User"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("X-Remote-User upstream = %q, want [alice]", v)
	}
	for k, v := range r.Header {
		if sameHeaderName(k, "X-Remote-User") && (k != "X-Remote-User" || len(v) != 1 || v[0] != "alice") ||
			strings.Contains(strings.Join(v, ","), "bob") {
			t.Errorf("upstream got %s: %q", k, v)
		}
	}
}
