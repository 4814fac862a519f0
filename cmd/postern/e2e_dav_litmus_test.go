package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-webdav"

	"github.com/postern-dev/postern/internal/testpeer"
)

// litmusResult matches one finished litmus test: "12. copy_simple..... pass".
var litmusResult = regexp.MustCompile(`(\d+)\. (\w+)\.+ (pass|FAIL|SKIPPED|WARNING)`)

// runLitmus runs the WebDAV compliance suite against url and returns each
// test's outcome by suite and name.
func runLitmus(t *testing.T, bin, url, user, password string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-k", url}
	if user != "" {
		args = append(args, user, password)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()          // litmus writes debug.log and child.log here
	out, _ := cmd.CombinedOutput() // failing tests make it exit non-zero
	results := map[string]string{}
	suite := ""
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "-> running `"); ok {
			suite, _, _ = strings.Cut(s, "'")
			continue
		}
		for _, m := range litmusResult.FindAllStringSubmatch(line, -1) {
			results[suite+"/"+m[2]] = m[3]
		}
	}
	if len(results) < 10 {
		t.Fatalf("litmus against %s ran only %d tests:\n%s", url, len(results), out)
	}
	return results
}

// compareLitmus reports every test whose outcome through postern differs
// from the one against the upstream directly, except the known ones.
func compareLitmus(t *testing.T, direct, proxied map[string]string, known map[string]string) {
	t.Helper()
	names := make([]string, 0, len(direct))
	for n := range direct {
		names = append(names, n)
	}
	for n := range proxied {
		if _, ok := direct[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	passed := 0
	for _, n := range names {
		if proxied[n] == "pass" {
			passed++
		}
		if direct[n] == proxied[n] {
			continue
		}
		if reason, ok := known[n]; ok {
			t.Logf("%s: direct %s, through postern %s (%s)", n, direct[n], proxied[n], reason)
			continue
		}
		t.Errorf("%s: direct %q, through postern %q", n, direct[n], proxied[n])
	}
	t.Logf("litmus: %d tests, %d passed through postern", len(names), passed)
}

// TestDAVLitmus runs litmus against each upstream directly and through
// postern and wants the same outcome for every test.
func TestDAVLitmus(t *testing.T) {
	bin := testpeer.RequirePeer(t, "litmus")
	t.Run("go-webdav file server", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"direct", "proxied"} {
			if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		up := httptest.NewServer(&webdav.Handler{FileSystem: webdav.LocalFileSystem(root)})
		t.Cleanup(up.Close)
		e := startDAVE2E(t, davOptions{upstream: up.URL + "/"})
		e.user(t, "alice", false)
		_, app := e.appPassword(t, "alice")
		direct := runLitmus(t, bin, up.URL+"/direct/", "", "")
		proxied := runLitmus(t, bin, e.base+"/proxied/", "alice", app)
		compareLitmus(t, direct, proxied, litmusOverTLS)
	})
	t.Run("radicale", func(t *testing.T) {
		// Radicale checks Basic itself here, so litmus can reach it
		// directly; postern logs in with alice's stored upstream password.
		peer := testpeer.RadicaleWith(t, testpeer.RadicaleOptions{Users: map[string]string{"alice": "upstream-pw"}})
		e := startDAVE2E(t, davOptions{upstream: peer.URL, upstreamExtra: []string{`auth = "stored"`}})
		e.user(t, "alice", false)
		_, app := e.appPassword(t, "alice")
		e.secrets = append(e.secrets, w6Secret{"stored upstream password of alice", "alice", "upstream-pw", ""})
		if err := e.g.store.SetUpstreamPassword(e2eCtx(), "alice", "upstream-pw"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"direct", "proxied"} {
			req, _ := http.NewRequest("MKCALENDAR", peer.URL+"alice/"+c+"/", nil)
			req.SetBasicAuth("alice", "upstream-pw")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("MKCALENDAR %s: %v %v", c, resp, err)
			}
			resp.Body.Close()
		}
		direct := runLitmus(t, bin, peer.URL+"alice/direct/", "alice", "upstream-pw")
		proxied := runLitmus(t, bin, e.base+"/alice/proxied/", "alice", app)
		compareLitmus(t, direct, proxied, litmusOverTLS)
	})
}

// litmusOverTLS are the tests litmus itself runs differently because
// postern speaks HTTPS and the upstreams here plain HTTP.
var litmusOverTLS = map[string]string{
	"http/expect100": "litmus skips it for an SSL server: it writes the request on a raw socket",
}
