package admin

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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
	var tok newTokenResponse
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
