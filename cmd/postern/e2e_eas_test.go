package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/carddav"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// folderSyncFirst is a device's first FolderSync.
const folderSyncFirst = `<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>`

// ping is a Ping of one mail folder with a heartbeat in seconds.
func ping(folder string, heartbeat int) string {
	return fmt.Sprintf(`<Ping xmlns="Ping:"><HeartbeatInterval>%d</HeartbeatInterval><Folders><Folder>`+
		`<Id>%s</Id><Class>Email</Class></Folder></Folders></Ping>`, heartbeat, folder)
}

// TestActiveSync_SOGo: a phone's ActiveSync through postern serve to real
// SOGo with an app password: OPTIONS answers the protocol versions,
// FolderSync lists the mailboxes with status 1, and Sync returns a
// message delivered to the user's Dovecot mailbox. The device is recorded
// as the app password's client. A password limited to IMAP is refused for
// ActiveSync, and one limited to ActiveSync is refused for CalDAV.
func TestActiveSync_SOGo(t *testing.T) {
	t.Parallel()
	e := startSOGoE2E(t, sogoOptions{users: []string{"alice"}})
	e.user(t, "alice", true)
	_, secret := e.appPassword(t, "alice")
	c := e.eas(t, "alice", secret, "POSTERNE2E1", nil)
	opts, err := c.Options(t)
	if err != nil || opts.Status != http.StatusOK || !slices.Contains(strings.Split(opts.Header.Get("MS-ASProtocolVersions"), ","), "14.1") {
		t.Fatalf("OPTIONS: %v %v", err, opts)
	}
	inbox := testpeer.FolderSyncInbox(t, c)
	subject, raw := testpeer.TestMessage("alice")
	e.sogo.Dovecot.Deliver(t, "alice", "INBOX", raw)
	if got := testpeer.SyncSubjects(t, c, inbox); !slices.Contains(got, subject) {
		t.Errorf("Sync of INBOX gave %q, want %q among them", got, subject)
	}
	aps, err := e.g.store.ListAppPasswords(e2eCtx(), "alice")
	if err != nil || len(aps) != 1 || aps[0].LastClient != "SmartPhone POSTERNE2E1" {
		t.Errorf("the app password's client: %+v, %v", aps, err)
	}

	_, imapOnly := e.appPassword(t, "alice", authstore.IMAP)
	refused := e.eas(t, "alice", imapOnly, "POSTERNE2E2", nil)
	if a, err := refused.Command(context.Background(), t, "FolderSync", folderSyncFirst); err != nil ||
		a.Status != http.StatusUnauthorized || a.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("an IMAP-only app password for ActiveSync: %v %v, want 401 with a challenge", err, a)
	}
	_, easOnly := e.appPassword(t, "alice", authstore.ActiveSync)
	if code, _, _ := e.do(t, "PROPFIND", "/SOGo/dav/alice/Calendar/", "alice", easOnly, map[string]string{"Depth": "0"}, ""); code != http.StatusUnauthorized {
		t.Errorf("an ActiveSync-only app password for CalDAV: %d, want 401", code)
	}
}

// TestActiveSync_A8_TwoStepAccountPassword: a user with two-step
// verification gets nothing over ActiveSync with the account password,
// however the request looks, and in with an app password.
func TestActiveSync_A8_TwoStepAccountPassword(t *testing.T) {
	t.Parallel()
	e := startSOGoE2E(t, sogoOptions{users: []string{"dave"}})
	password := e.user(t, "dave", true)
	_, secret := e.appPassword(t, "dave")
	for _, cmd := range []string{"OPTIONS", "FolderSync"} {
		c := e.eas(t, "dave", password, "POSTERNA8", nil)
		var a *testpeer.EASAnswer
		var err error
		if cmd == "OPTIONS" {
			a, err = c.Options(t)
		} else {
			a, err = c.Command(context.Background(), t, cmd, folderSyncFirst)
		}
		if err != nil || a.Status != http.StatusUnauthorized {
			t.Errorf("%s with the account password: %v %v, want 401", cmd, err, a)
		}
	}
	testpeer.FolderSyncInbox(t, e.eas(t, "dave", secret, "POSTERNA8", nil))
}

// TestP11_ActiveSyncForgedRemoteUser: bob's app password with SOGo's
// trusted headers naming alice, in every spelling SOGo's web layer could
// read as them, and alice named in the query too, gets bob's mailbox:
// alice's message never reaches him.
func TestP11_ActiveSyncForgedRemoteUser(t *testing.T) {
	t.Parallel()
	e := startSOGoE2E(t, sogoOptions{users: []string{"alice", "bob"}})
	e.user(t, "alice", false)
	e.user(t, "bob", false)
	_, secret := e.appPassword(t, "bob")
	aliceSubject, aliceRaw := testpeer.TestMessage("alice")
	bobSubject, bobRaw := testpeer.TestMessage("bob")
	e.sogo.Dovecot.Deliver(t, "alice", "INBOX", aliceRaw)
	e.sogo.Dovecot.Deliver(t, "bob", "INBOX", bobRaw)
	forged := http.Header{}
	for _, k := range []string{"X-Webobjects-Remote-User", "x_webobjects_remote_user", "X-WEBOBJECTS_REMOTE-USER"} {
		forged[k] = []string{"alice", "alice"}
	}
	forged["X-Webobjects-Auth-Type"] = []string{"Basic"}
	c := e.eas(t, "bob", secret, "POSTERNP11", forged)
	c.User = "alice"
	got := testpeer.SyncSubjects(t, c, testpeer.FolderSyncInbox(t, c))
	if slices.Contains(got, aliceSubject) || !slices.Contains(got, bobSubject) {
		t.Errorf("bob, forging alice, synced %q; want bob's %q and not alice's %q", got, bobSubject, aliceSubject)
	}
}

// TestP13_ActiveSyncPingRevoked: a Ping through postern serve to real
// SOGo waits as long as its heartbeat asks, past the DAV upstream's
// response timeout, and is answered; a Ping that waits is ended within a
// second when its app password is revoked, and the next request gets 401.
func TestP13_ActiveSyncPingRevoked(t *testing.T) {
	t.Parallel()
	e := startSOGoE2E(t, sogoOptions{users: []string{"erin"}, davResponseTimeout: "1s"})
	e.user(t, "erin", true)
	id, secret := e.appPassword(t, "erin")
	c := e.eas(t, "erin", secret, "POSTERNP13", nil)
	inbox := testpeer.FolderSyncInbox(t, c)
	testpeer.SyncSubjects(t, c, inbox)

	// SOGo looks for changes every 5 s (SOGoInternalSyncInterval), and
	// answers a 5-second heartbeat without changes with status 1.
	start := time.Now()
	a, err := c.Command(context.Background(), t, "Ping", ping(inbox, 5))
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("a Ping of 5 s behind a 1 s DAV timeout: %v %v", err, a)
	}
	var p testpeer.EASPing
	testpeer.EASParse(t, a, &p)
	if p.Status != 1 {
		t.Fatalf("Ping status %d, want 1 (the heartbeat passed without changes):\n%s", p.Status, a.XML)
	}
	t.Logf("a 5-second Ping answered after %v", time.Since(start).Round(time.Millisecond))

	waits := strings.Count(e.sogo.Log(t), "in Ping")
	ended := make(chan error, 1)
	go func() {
		_, err := c.Command(context.Background(), t, "Ping", ping(inbox, 3540))
		ended <- err
	}()
	eventually(t, "SOGo holding the second Ping", func() bool { return strings.Count(e.sogo.Log(t), "in Ping") > waits })
	revoked := time.Now()
	if err := e.g.store.RevokeAppPassword(e2eCtx(), "erin", id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		took := time.Since(revoked)
		t.Logf("the held Ping ended %v after the revocation: %v", took.Round(time.Millisecond), err)
		if err == nil || took > kickLimit {
			t.Errorf("the held Ping ended after %v with %v; want a cut connection within %v", took, err, kickLimit)
		}
	case <-time.After(e2eWait):
		t.Fatal("the held Ping outlived its app password's revocation")
	}
	if a, err := c.Options(t); err != nil || a.Status != http.StatusUnauthorized {
		t.Errorf("the next request: %v %v, want 401", err, a)
	}
}

// TestDAV_SOGoClients: go-webdav's CalDAV and CardDAV clients discover,
// write and read back an event and a card through postern serve in front
// of real SOGo, with an app password.
func TestDAV_SOGoClients(t *testing.T) {
	t.Parallel()
	e := startSOGoE2E(t, sogoOptions{users: []string{"carol"}})
	e.user(t, "carol", true)
	_, secret := e.appPassword(t, "carol")
	ctx := context.Background()
	hc := basicClient{e.client, "carol", secret}
	root := e.base + "/SOGo/dav/"
	wc, err := webdav.NewClient(hc, root)
	if err != nil {
		t.Fatal(err)
	}
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil || principal != "/SOGo/dav/carol/" {
		t.Fatalf("principal = %q, %v", principal, err)
	}
	t.Run("CalDAV", func(t *testing.T) { sogoCalDAV(t, hc, root, principal) })
	t.Run("CardDAV", func(t *testing.T) { sogoCardDAV(t, hc, root, principal) })
}

func sogoCalDAV(t *testing.T, hc webdav.HTTPClient, root, principal string) {
	ctx := context.Background()
	cc, cals := findCalendars(t, hc, root, principal)
	if len(cals) == 0 {
		t.Fatal("no calendar")
	}
	path := cals[0].Path + "standup.ics"
	if _, err := cc.PutCalendarObject(ctx, path, newEvent("standup@postern", "Standup")); err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	obj, err := cc.GetCalendarObject(ctx, path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	if ev := obj.Data.Children[0]; ev.Props.Get("SUMMARY").Value != "Standup" {
		t.Errorf("the event read back: %+v", ev.Props)
	}
}

func sogoCardDAV(t *testing.T, hc webdav.HTTPClient, root, principal string) {
	ctx := context.Background()
	cc, books := findAddressBooks(t, hc, root, principal)
	if len(books) == 0 {
		t.Fatal("no address book")
	}
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "3.0")
	card.SetValue(vcard.FieldUID, "carol-friend@postern")
	card.SetValue(vcard.FieldFormattedName, "Dana Friend")
	card.SetValue(vcard.FieldName, "Friend;Dana;;;")
	path := books[0].Path + "dana.vcf"
	if _, err := cc.PutAddressObject(ctx, path, card); err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	// SOGo answers a GET of a card as text/x-vcard, which go-webdav's
	// GetAddressObject refuses; a multiget reads it back.
	objs, err := cc.MultiGetAddressBook(ctx, books[0].Path, &carddav.AddressBookMultiGet{Paths: []string{path},
		DataRequest: carddav.AddressDataRequest{AllProp: true}})
	if err != nil || len(objs) != 1 {
		t.Fatalf("multiget %s: %+v, %v", path, objs, err)
	}
	if fn := objs[0].Card.Value(vcard.FieldFormattedName); fn != "Dana Friend" {
		t.Errorf("the card read back has FN %q", fn)
	}
}
