package testpeer

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestSOGo: a private SOGo answers ActiveSync for the user its trusted
// header names, with the master password in Basic beside it: OPTIONS
// lists the protocol versions, FolderSync lists the user's mailboxes, and
// Sync returns a message delivered to the user's Dovecot mailbox. Its DAV
// side trusts the header alone.
func TestSOGo(t *testing.T) {
	s := SOGo(t, SOGoOptions{})
	c := &EASClient{URL: s.ActiveSyncURL, User: "alice", DeviceID: "TESTPEER1", DeviceType: "SmartPhone",
		HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Prepare: func(r *http.Request) {
			r.Header.Set("x-webobjects-remote-user", "alice")
			r.Header.Set("x-webobjects-auth-type", "Basic")
			r.SetBasicAuth("alice", s.MasterPassword)
		}}
	t.Cleanup(func() { t.Logf("transcript:\n%s", c.Transcript.String()) })
	opts, err := c.Options(t)
	if err != nil || opts.Status != http.StatusOK || !strings.Contains(opts.Header.Get("MS-ASProtocolVersions"), "14.1") {
		t.Fatalf("OPTIONS: %v %v", err, opts)
	}
	inbox := FolderSyncInbox(t, c)
	subject, raw := TestMessage("alice")
	s.Dovecot.Deliver(t, "alice", "INBOX", raw)
	if got := SyncSubjects(t, c, inbox); !slices.Contains(got, subject) {
		t.Errorf("Sync of INBOX gave %q, want %q among them", got, subject)
	}
	req, _ := http.NewRequest("PROPFIND", s.DAVURL+"alice/Calendar/", strings.NewReader(""))
	req.Header.Set("Depth", "1")
	req.Header.Set("x-webobjects-remote-user", "alice")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus {
		t.Errorf("PROPFIND of alice's calendars: %s", resp.Status)
	}
}
