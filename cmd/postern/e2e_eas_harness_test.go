package main

import (
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/testpeer"
)

// sogoE2E is one gateway whose DAV listener serves CalDAV, CardDAV and
// ActiveSync in front of a real SOGo, as docs/activesync.md sets it up:
// the trusted header for both, the master password beside it for
// ActiveSync, no connection reuse.
type sogoE2E struct {
	*davE2E
	sogo *testpeer.SOGoPeer
}

// sogoOptions shape one gateway in front of SOGo.
type sogoOptions struct {
	users []string // SOGo and Dovecot users; also made in postern's store
	// davResponseTimeout replaces upstream.dav.response_timeout.
	davResponseTimeout string
}

func startSOGoE2E(t *testing.T, opts sogoOptions) *sogoE2E {
	t.Helper()
	users := map[string]string{}
	for _, u := range opts.users {
		users[u] = rand.Text()
	}
	s := testpeer.SOGo(t, testpeer.SOGoOptions{Users: users})
	masterFile := filepath.Join(t.TempDir(), "sogo-master")
	if err := os.WriteFile(masterFile, []byte(s.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := strconv.Quote
	dav := []string{`user_header = "x-webobjects-remote-user"`, "keep_alive = false"}
	if opts.davResponseTimeout != "" {
		dav = append(dav, "response_timeout = "+q(opts.davResponseTimeout))
	}
	e := &sogoE2E{sogo: s, davE2E: startDAVE2E(t, davOptions{upstream: s.URL + "/", upstreamExtra: dav,
		tables: []string{"[upstream.activesync]", "url = " + q(s.ActiveSyncURL), "master_password_file = " + q(masterFile)}})}
	for _, u := range opts.users {
		// The master password, as postern sends it beside the header.
		e.secrets = append(e.secrets, w6Secret{"SOGo master password as " + u, u, s.MasterPassword, ""})
	}
	return e
}

// eas is an ActiveSync client of the gateway for user's device, logging in
// with secret; hdr are more headers for every request.
func (e *sogoE2E) eas(t *testing.T, user, secret, device string, hdr http.Header) *testpeer.EASClient {
	t.Helper()
	c := &testpeer.EASClient{URL: e.base + config.ActiveSyncPath, HTTP: e.newClient(), User: user,
		DeviceID: device, DeviceType: "SmartPhone",
		Prepare: func(r *http.Request) {
			r.SetBasicAuth(user, secret)
			for k, v := range hdr {
				r.Header[k] = v
			}
		}}
	t.Cleanup(func() {
		t.Logf("ActiveSync transcript of %s's %s:\n%s", user, device, strings.TrimSpace(c.Transcript.String()))
	})
	return c
}
