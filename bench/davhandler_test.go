package bench

import (
	"crypto/rand"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/memdav"
	"github.com/postern-dev/postern/proxy/dav"
)

// BenchmarkDAVHandler is postern's DAV front-end in one process, in front
// of the in-memory go-webdav upstream, against the upstream alone: the
// per-request cost of authentication and proxying without another process
// in the way. The front-end is served as `postern serve` serves it (TLS,
// HTTP/1.1 keep-alive, one connection state per connection), the upstream
// in plain HTTP as the direct clients reach it. The ratio is logged at the
// end; "parallel" runs GOMAXPROCS clients at once.
func BenchmarkDAVHandler(b *testing.B) {
	up := httptest.NewServer(memdav.Handler([]string{"alice"}, ""))
	defer up.Close()
	keys, err := authstore.NewKeys(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	st, err := authstore.Open(filepath.Join(b.TempDir(), "postern.db"), authstore.Options{Keys: keys})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := authstore.WithActor(b.Context(), authstore.Actor{Name: "bench"})
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: "alice"}); err != nil {
		b.Fatal(err)
	}
	_, secret, err := st.CreateAppPassword(ctx, "alice", authstore.NewAppPassword{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(up.URL)
	h, err := dav.New(dav.Config{Auth: st, Upstream: u})
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewUnstartedServer(h)
	front.Config.ConnContext = dav.ConnContext
	front.StartTLS()
	defer front.Close()
	path := memdav.CalDAVPrefix + "alice/calendars/default/welcome.ics"
	perOp := map[string]float64{}
	for _, tc := range []struct {
		name, base string
		auth       func(*http.Request)
	}{
		{"direct", up.URL, func(r *http.Request) { r.Header.Set("X-Remote-User", "alice") }},
		{"postern", front.URL, func(r *http.Request) { r.SetBasicAuth("alice", strings.ReplaceAll(secret, " ", "")) }},
	} {
		get := func(b *testing.B, client *http.Client) {
			req, _ := http.NewRequest("GET", tc.base+path, nil)
			tc.auth(req)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		newClient := func() *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
		}
		b.Run(tc.name, func(b *testing.B) {
			client := newClient()
			for b.Loop() {
				get(b, client)
			}
			perOp[tc.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				client := newClient()
				for pb.Next() {
					get(b, client)
				}
			})
		})
	}
	if perOp["direct"] > 0 {
		b.Logf("postern / direct = %.2f per GET", perOp["postern"]/perOp["direct"])
	}
}
