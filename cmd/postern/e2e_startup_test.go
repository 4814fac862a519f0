package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/testpeer"
)

// readyz reads the admin listener's /readyz.
func (e *e2e) readyz(t *testing.T) (int, []string) {
	t.Helper()
	code, body := e.adminGet(t, "/readyz")
	var ready struct {
		Failing []string `json:"failing"`
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return code, ready.Failing
}

// eventually polls cond for up to e2eWait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartup_ProbesNameTheKey: serve probes each upstream at start; with
// `security = "starttls"` against Dovecot's implicit-TLS port the log says
// which key to set, long before a client's login would time out, and
// /readyz names the upstream; a correct upstream makes it ready.
func TestStartup_ProbesNameTheKey(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "erin")
	t.Run("starttls against implicit TLS", func(t *testing.T) {
		e := startE2E(t, peer, e2eOptions{imapUpstream: peer.IMAPSAddr})
		want := `upstream.imap.security = \"starttls\" but ` + peer.IMAPSAddr + ` speaks TLS at once: set upstream.imap.security = \"implicit\"`
		eventually(t, "the probe's warning", func() bool { return strings.Contains(e.logs.String(), want) })
		warn := regexp.MustCompile(`level=WARN msg="upstream probe failed" key=upstream.imap `)
		if n := len(warn.FindAllString(e.logs.String(), -1)); n != 1 {
			t.Errorf("%d probe warnings for upstream.imap, want 1:\n%s", n, e.logs)
		}
		if strings.Contains(e.logs.String(), "key=upstream.pop3") {
			t.Errorf("the good POP3 upstream was reported:\n%s", e.logs)
		}
		if code, failing := e.readyz(t); code != http.StatusServiceUnavailable || !slices.Equal(failing, []string{"upstream.imap"}) {
			t.Errorf("/readyz: %d %v", code, failing)
		}
	})
	t.Run("right configuration", func(t *testing.T) {
		e := startE2E(t, peer, e2eOptions{})
		eventually(t, "/readyz to answer 200", func() bool {
			code, _ := e.readyz(t)
			return code == http.StatusOK
		})
		if strings.Contains(e.logs.String(), "upstream probe failed") {
			t.Errorf("a good upstream failed its probe:\n%s", e.logs)
		}
	})
}

// TestStartup_RefusedMasterLogin: when Dovecot refuses the master login,
// clients are told to try later and the log says, at error level and once
// a minute, which keys hold the master credential.
func TestStartup_RefusedMasterLogin(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "frank")
	e := startE2E(t, peer, e2eOptions{users: []string{"frank"}, masterPassword: "not-the-master-password"})
	a := e.account("frank")
	for range 3 {
		if got := e.imapTry(t, "", a.name, a.appPassword); got != imapTempErr {
			t.Fatalf("IMAP login with a refused master login: %q", got)
		}
	}
	if got := e.pop3Try(t, "", a.name, a.appPassword); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Fatalf("POP3 login with a refused master login: %q", got)
	}
	logs := e.logs.String()
	for _, proto := range []string{"imap", "pop3"} {
		re := regexp.MustCompile(`level=ERROR msg="the upstream refused postern's master login; check upstream\.` + proto +
			`\.master_user and upstream\.` + proto + `\.master_password_file`)
		if n := len(re.FindAllString(logs, -1)); n != 1 {
			t.Errorf("%d master-login errors for %s, want 1:\n%s", n, proto, logs)
		}
	}
}

// adminGetReady reads a DAV gateway's /readyz.
func (e *davE2E) adminGetReady(t *testing.T) (int, []string) {
	t.Helper()
	resp, err := e.client.Get("https://" + e.g.addrs["admin"] + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var ready struct {
		Failing []string `json:"failing"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, ready.Failing
}

// TestStartup_ReadyFollowsDAVUpstream: /readyz probes the DAV upstream too:
// with Radicale unreachable it is not ready and names upstream.dav, and
// once Radicale answers it is ready within the probe's short retry, long
// before the 30 s interval of a healthy upstream.
func TestStartup_ReadyFollowsDAVUpstream(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{switched: true, switchedOff: true})
	readyz := func() (int, []string) { return e.adminGetReady(t) }
	eventually(t, "the probe's warning", func() bool {
		return strings.Contains(e.logs.String(), `msg="upstream probe failed" key=upstream.dav`)
	})
	if code, failing := readyz(); code != http.StatusServiceUnavailable || !slices.Equal(failing, []string{"upstream.dav"}) {
		t.Errorf("/readyz with Radicale unreachable: %d %v", code, failing)
	}
	e.sw.on()
	eventually(t, "/readyz to answer 200 once Radicale is back", func() bool {
		code, _ := readyz()
		return code == http.StatusOK
	})
}

// TestStartup_ReadyFollowsActiveSyncUpstream: with ActiveSync served,
// /readyz probes its upstream too and names upstream.activesync when it
// is unreachable, and a phone's command gets 503 with Retry-After, not a
// refused password.
func TestStartup_ReadyFollowsActiveSyncUpstream(t *testing.T) {
	t.Parallel()
	master := filepath.Join(t.TempDir(), "master")
	if err := os.WriteFile(master, []byte("master-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := "http://" + testpeer.Fault(t, testpeer.FaultDown) + "/SOGo/Microsoft-Server-ActiveSync"
	e := startDAVE2E(t, davOptions{tables: []string{"[upstream.activesync]", "url = " + strconv.Quote(down),
		"master_password_file = " + strconv.Quote(master)}})
	e.user(t, "alice", false)
	_, secret := e.appPassword(t, "alice")
	eventually(t, "the probe's warning", func() bool {
		return strings.Contains(e.logs.String(), `msg="upstream probe failed" key=upstream.activesync`)
	})
	// Radicale's first probe may still be on its way.
	eventually(t, "/readyz to name upstream.activesync alone", func() bool {
		code, failing := e.adminGetReady(t)
		return code == http.StatusServiceUnavailable && slices.Equal(failing, []string{"upstream.activesync"})
	})
	status, hdr, _ := e.do(t, "POST", config.ActiveSyncPath+"?Cmd=FolderSync&User=alice&DeviceId=D1&DeviceType=Phone",
		"alice", secret, nil, "")
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("FolderSync with the ActiveSync upstream down: %d, Retry-After %q", status, hdr.Get("Retry-After"))
	}
}
