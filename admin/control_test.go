package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/admin/api"
)

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func startControl(t *testing.T, e *env, allow func(uint32) bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, ControlSocket)
	ln, err := e.srv.listenControl(path, allow)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeControl(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

// TestControlSocket: mode 0600; the peer acts as admin cli:<uid> without
// CSRF or re-verification; a peer the rule refuses gets no answer; a
// second server does not steal a live socket.
func TestControlSocket(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	path := startControl(t, e, ownOrRoot)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}
	hc := unixClient(path)
	before := e.auditCount()
	res, err := hc.Post("http://postern/api/v1/users/alice/backup-code", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 409 { // alice has no second factor: the call got through every check
		t.Fatalf("status %d", res.StatusCode)
	}
	res, err = hc.Post("http://postern/api/v1/users/alice/app-passwords", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 422 {
		t.Fatalf("status %d", res.StatusCode)
	}
	res, err = hc.Post("http://postern/api/v1/tokens", "application/json", jsonBody(map[string]string{"name": "ci", "role": "admin"}))
	if err != nil {
		t.Fatal(err)
	}
	var tok api.NewTokenResponse
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != 200 || tok.Secret == "" {
		t.Fatalf("token: %d", res.StatusCode)
	}
	evs := e.eventsSince(before)
	if len(evs) != 1 || evs[0].Actor != "cli:"+strconv.Itoa(os.Getuid()) {
		t.Errorf("events %s", fmtEvents(evs))
	}
	if _, err := e.srv.ListenControl(path); err == nil {
		t.Error("a second listener replaced a live socket")
	}

	refused := startControl(t, e, func(uint32) bool { return false })
	if res, err := unixClient(refused).Get("http://postern/api/v1/users"); err == nil {
		res.Body.Close()
		t.Fatalf("a refused peer got %d", res.StatusCode)
	}
}

// TestControlSocketReplacesStale: a socket file nobody serves on is
// replaced; a regular file is not.
func TestControlSocketReplacesStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listenUnix(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := listenUnix(file); err == nil {
		t.Error("a regular file was replaced")
	}
}

// TestControlSocketRefusesOtherUID runs a real client as nobody: with the
// socket's 0600 mode it cannot connect at all; with the mode opened up for
// the test, SO_PEERCRED still refuses it before any request is read.
func TestControlSocketRefusesOtherUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	for _, bin := range []string{"setpriv", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	e := newEnv(t)
	var mu sync.Mutex
	var asked []uint32
	path := startControl(t, e, func(uid uint32) bool {
		mu.Lock()
		asked = append(asked, uid)
		mu.Unlock()
		return ownOrRoot(uid)
	})
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func() (int, string) {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"curl", "-sS", "--max-time", "5", "--unix-socket", path, "http://postern/api/v1/users")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := asNobody(); code != 7 { // curl: could not connect (EACCES)
		t.Errorf("0600 socket: curl exit %d: %s", code, out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if code, out := asNobody(); code == 0 {
		t.Errorf("peer check: nobody was served: %s", out)
	}
	mu.Lock()
	if !slices.Contains(asked, 65534) {
		t.Errorf("the peer check never saw uid 65534 (saw %v)", asked)
	}
	mu.Unlock()
	// Root itself is served.
	if res, err := unixClient(path).Get("http://postern/api/v1/users"); err != nil || res.StatusCode != 200 {
		t.Errorf("root: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
