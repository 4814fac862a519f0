package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// controlClient speaks HTTP over the gateway's control socket, as the CLI
// does.
func (e *e2e) controlClient() *http.Client {
	path := e.addr("control")
	return &http.Client{Timeout: e2eIO, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func apiCall(t *testing.T, hc *http.Client, method, url, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, body)
		}
	}
	return res.StatusCode
}

type liveList struct {
	Sessions []struct {
		ID              string `json:"id"`
		User            string `json:"user"`
		AppPasswordID   string `json:"app_password_id"`
		AppPasswordName string `json:"app_password_name"`
	} `json:"sessions"`
}

// TestControlSocketEndsLiveSessions: with the gateway serving Dovecot,
// the control socket (mode 0600) lists live IMAP sessions and revoking an
// app password through it ends the IDLE session within a second; the
// next login fails. An admin token on the HTTP listener ends a session
// by id.
func TestControlSocketEndsLiveSessions(t *testing.T) {
	t.Parallel()
	users := []string{"ctla", "ctlb"}
	peer := startPeer(t, users...)
	e := startE2E(t, peer, e2eOptions{users: users})
	st, err := os.Stat(e.addr("control"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", st, err)
	}
	hc := e.controlClient()
	a, b := e.account("ctla"), e.account("ctlb")
	c, rec := e.dialIMAP(t, "", nil)
	startIdle(t, c, a.name, a.appPassword)
	c2, _ := e.dialIMAP(t, "", nil)
	startIdle(t, c2, b.name, b.appPassword)

	var live liveList
	if code := apiCall(t, hc, "GET", "http://postern/api/v1/sessions?user=ctla", "", &live); code != 200 ||
		len(live.Sessions) != 1 || live.Sessions[0].AppPasswordID != a.appPassID || live.Sessions[0].AppPasswordName != "mail app" {
		t.Fatalf("sessions: %d %+v", code, live)
	}
	start := time.Now()
	if code := apiCall(t, hc, "DELETE", fmt.Sprintf("http://postern/api/v1/users/%s/app-passwords/%s", a.name, a.appPassID), "", nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	waitClosed(t, c, start, kickLimit)
	if !strings.Contains(rec.String(), "\r\n* BYE ") {
		t.Errorf("no BYE:\n%s", rec.String())
	}
	if got := e.imapTry(t, "", a.name, a.appPassword); got != imapFailure {
		t.Errorf("login after revoke: %q", got)
	}

	_, token, err := e.g.store.CreateToken(e2eCtx(), authstore.NewToken{Name: "ops", Role: authstore.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Client{Timeout: e2eIO}
	base := "http://" + e.addr("admin")
	if code := apiCall(t, web, "GET", base+"/api/v1/sessions?user=ctlb", token, &live); code != 200 || len(live.Sessions) != 1 {
		t.Fatalf("sessions over HTTP: %d %+v", code, live)
	}
	start = time.Now()
	if code := apiCall(t, web, "DELETE", base+"/api/v1/sessions/"+live.Sessions[0].ID, token, nil); code != 204 {
		t.Fatalf("end session: %d", code)
	}
	waitClosed(t, c2, start, kickLimit)
	if code := apiCall(t, web, "GET", base+"/api/v1/sessions", "", nil); code != 401 {
		t.Errorf("no token: %d", code)
	}
}
