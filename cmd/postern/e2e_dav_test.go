package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/memdav"
)

const testEvent = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern//test//EN\r\nBEGIN:VEVENT\r\nUID:%s\r\n" +
	"DTSTAMP:20260101T090000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"

func newEvent(uid, summary string) *ical.Calendar {
	cal, err := ical.NewDecoder(strings.NewReader(fmt.Sprintf(testEvent, uid, summary))).Decode()
	if err != nil {
		panic(err)
	}
	return cal
}

// findCalendars discovers principal's calendars (home set, then the
// calendars in it) with go-webdav's CalDAV client rooted at root.
func findCalendars(t *testing.T, hc webdav.HTTPClient, root, principal string) (*caldav.Client, []caldav.Calendar) {
	t.Helper()
	ctx := context.Background()
	cc, err := caldav.NewClient(hc, root)
	if err != nil {
		t.Fatal(err)
	}
	home, err := cc.FindCalendarHomeSet(ctx, principal)
	if err != nil {
		t.Fatalf("home set: %v", err)
	}
	cals, err := cc.FindCalendars(ctx, home)
	if err != nil {
		t.Fatalf("calendars in %s: %v", home, err)
	}
	return cc, cals
}

// findAddressBooks is findCalendars for CardDAV.
func findAddressBooks(t *testing.T, hc webdav.HTTPClient, root, principal string) (*carddav.Client, []carddav.AddressBook) {
	t.Helper()
	ctx := context.Background()
	cc, err := carddav.NewClient(hc, root)
	if err != nil {
		t.Fatal(err)
	}
	home, err := cc.FindAddressBookHomeSet(ctx, principal)
	if err != nil {
		t.Fatalf("home set: %v", err)
	}
	books, err := cc.FindAddressBooks(ctx, home)
	if err != nil {
		t.Fatalf("address books in %s: %v", home, err)
	}
	return cc, books
}

// TestDAVRadicaleCalDAV: go-webdav's CalDAV client discovers (principal →
// home set → calendars) and creates, queries, multigets, updates with
// If-Match and deletes through postern with an app password, against real
// Radicale.
func TestDAVRadicaleCalDAV(t *testing.T) {
	e := startDAVE2E(t, davOptions{})
	e.user(t, "alice", true)
	_, secret := e.appPassword(t, "alice")
	e.mkcol(t, "alice", secret)
	ctx := context.Background()
	hc := basicClient{e.client, "alice", secret}

	wc, err := webdav.NewClient(hc, e.base+"/")
	if err != nil {
		t.Fatal(err)
	}
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil || principal != "/alice/" {
		t.Fatalf("principal = %q, %v", principal, err)
	}
	cc, cals := findCalendars(t, hc, e.base+"/", principal)
	if len(cals) != 1 || cals[0].Path != "/alice/"+calPrefix+"/" {
		t.Fatalf("calendars = %+v", cals)
	}
	path := cals[0].Path + "standup.ics"
	obj, err := cc.PutCalendarObject(ctx, path, newEvent("standup@postern", "Standup"))
	if err != nil || obj.ETag == "" {
		t.Fatalf("put: %+v, %v", obj, err)
	}
	found, err := cc.QueryCalendar(ctx, cals[0].Path, &caldav.CalendarQuery{
		CompRequest: caldav.CalendarCompRequest{Name: "VCALENDAR", AllProps: true, AllComps: true},
		CompFilter:  caldav.CompFilter{Name: "VCALENDAR", Comps: []caldav.CompFilter{{Name: "VEVENT"}}},
	})
	if err != nil || len(found) != 1 || found[0].Path != path {
		t.Fatalf("query = %+v, %v", found, err)
	}
	got, err := cc.MultiGetCalendar(ctx, cals[0].Path, &caldav.CalendarMultiGet{Paths: []string{path},
		CompRequest: caldav.CalendarCompRequest{Name: "VCALENDAR", AllProps: true, AllComps: true}})
	if err != nil || len(got) != 1 || summary(got[0].Data) != "Standup" {
		t.Fatalf("multiget = %+v, %v", got, err)
	}
	// Update with If-Match: a stale tag fails, the current one succeeds.
	body := fmt.Sprintf(testEvent, "standup@postern", "Standup (moved)")
	ct := map[string]string{"Content-Type": ical.MIMEType, "If-Match": `"stale"`}
	if code, _, _ := e.do(t, http.MethodPut, path, "alice", secret, ct, body); code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match: %d, want 412", code)
	}
	ct["If-Match"] = strconv.Quote(obj.ETag) // go-webdav gives the tag unquoted
	if code, _, b := e.do(t, http.MethodPut, path, "alice", secret, ct, body); code/100 != 2 {
		t.Errorf("PUT with If-Match: %d %s", code, b)
	}
	if upd, err := cc.GetCalendarObject(ctx, path); err != nil || summary(upd.Data) != "Standup (moved)" {
		t.Errorf("after update: %+v, %v", upd, err)
	}
	if err := wc.RemoveAll(ctx, path); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if left, err := cc.QueryCalendar(ctx, cals[0].Path, &caldav.CalendarQuery{
		CompRequest: caldav.CalendarCompRequest{Name: "VCALENDAR"},
		CompFilter:  caldav.CompFilter{Name: "VCALENDAR"},
	}); err != nil || len(left) != 0 {
		t.Errorf("after delete: %+v, %v", left, err)
	}
}

func summary(cal *ical.Calendar) string {
	if cal == nil {
		return ""
	}
	for _, ev := range cal.Events() {
		s, _ := ev.Props.Text(ical.PropSummary)
		return s
	}
	return ""
}

// TestDAVRadicaleCardDAV: the CardDAV client does the same with contacts.
func TestDAVRadicaleCardDAV(t *testing.T) {
	e := startDAVE2E(t, davOptions{})
	e.user(t, "bob", false)
	_, secret := e.appPassword(t, "bob", authstore.CalDAV, authstore.CardDAV)
	e.mkcol(t, "bob", secret)
	ctx := context.Background()
	hc := basicClient{e.client, "bob", secret}
	wc, _ := webdav.NewClient(hc, e.base+"/")
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc, books := findAddressBooks(t, hc, e.base+"/", principal)
	if len(books) != 1 {
		t.Fatalf("address books = %+v", books)
	}
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "3.0")
	card.SetValue(vcard.FieldUID, "carol@postern")
	card.SetValue(vcard.FieldFormattedName, "Carol")
	card.SetName(&vcard.Name{FamilyName: "Example", GivenName: "Carol"})
	path := books[0].Path + "carol.vcf"
	obj, err := cc.PutAddressObject(ctx, path, card)
	if err != nil || obj.ETag == "" {
		t.Fatalf("put: %+v, %v", obj, err)
	}
	found, err := cc.QueryAddressBook(ctx, books[0].Path, &carddav.AddressBookQuery{
		DataRequest: carddav.AddressDataRequest{AllProp: true},
		PropFilters: []carddav.PropFilter{{Name: vcard.FieldFormattedName, TextMatches: []carddav.TextMatch{{Text: "Carol"}}}},
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("query = %+v, %v", found, err)
	}
	got, err := cc.MultiGetAddressBook(ctx, books[0].Path, &carddav.AddressBookMultiGet{Paths: []string{path},
		DataRequest: carddav.AddressDataRequest{AllProp: true}})
	if err != nil || len(got) != 1 || got[0].Card.PreferredValue(vcard.FieldFormattedName) != "Carol" {
		t.Fatalf("multiget = %+v, %v", got, err)
	}
	card.SetValue(vcard.FieldFormattedName, "Carol E.")
	var sb strings.Builder
	if err := vcard.NewEncoder(&sb).Encode(card); err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"Content-Type": vcard.MIMEType, "If-Match": `"stale"`}
	if code, _, _ := e.do(t, http.MethodPut, path, "bob", secret, hdr, sb.String()); code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match: %d, want 412", code)
	}
	hdr["If-Match"] = strconv.Quote(obj.ETag)
	if code, _, b := e.do(t, http.MethodPut, path, "bob", secret, hdr, sb.String()); code/100 != 2 {
		t.Errorf("PUT with If-Match: %d %s", code, b)
	}
	if err := wc.RemoveAll(ctx, path); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if code, _, _ := e.do(t, http.MethodGet, path, "bob", secret, nil, ""); code != http.StatusNotFound {
		t.Errorf("GET after delete: %d, want 404", code)
	}
}

// TestDAVRadicaleCredentials: what each kind of credential may do.
func TestDAVRadicaleCredentials(t *testing.T) {
	e := startDAVE2E(t, davOptions{})
	mfaPassword := e.user(t, "alice", true)
	_, full := e.appPassword(t, "alice")
	calID, calOnly := e.appPassword(t, "alice", authstore.CalDAV)
	e.mkcol(t, "alice", full)
	depth := map[string]string{"Depth": "0", "Content-Type": "application/xml"}
	cal, card := "/alice/"+calPrefix+"/", "/alice/"+cardPrefix+"/"

	t.Run("HTTP/2 and HTTP/1.1", func(t *testing.T) {
		for _, h2 := range []bool{true, false} {
			tr := &http.Transport{TLSClientConfig: e.tlsConfig(), ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			req, _ := http.NewRequest("PROPFIND", e.base+cal, strings.NewReader(propfindBody))
			req.Header.Set("Depth", "0")
			req.SetBasicAuth("alice", full)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != http.StatusMultiStatus || resp.ProtoMajor != want {
				t.Errorf("HTTP/%d wanted: %s over %s", want, resp.Status, resp.Proto)
			}
		}
	})
	t.Run("no credentials: challenge", func(t *testing.T) {
		code, h, _ := e.do(t, "PROPFIND", "/alice/", "", "", depth, propfindBody)
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Basic realm="postern", charset="UTF-8"` {
			t.Errorf("got %d %q", code, h.Get("WWW-Authenticate"))
		}
	})
	t.Run("account password of an MFA user is refused (A8)", func(t *testing.T) {
		if code, _, body := e.do(t, "PROPFIND", cal, "alice", mfaPassword, depth, propfindBody); code != http.StatusUnauthorized ||
			!strings.Contains(body, "https://mail.example.org/account") {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("CalDAV-only app password", func(t *testing.T) {
		if code, _, _ := e.do(t, "PROPFIND", cal, "alice", calOnly, depth, propfindBody); code != http.StatusMultiStatus {
			t.Errorf("calendar: %d, want 207", code)
		}
		if code, _, _ := e.do(t, "PROPFIND", "/alice/", "alice", calOnly, depth, propfindBody); code != http.StatusMultiStatus {
			t.Errorf("principal: %d, want 207", code)
		}
		if code, _, _ := e.do(t, "PROPFIND", card, "alice", calOnly, depth, propfindBody); code != http.StatusUnauthorized {
			t.Errorf("address book: %d, want 401", code)
		}
	})
	t.Run("another user's path is the upstream's to refuse", func(t *testing.T) {
		e.user(t, "bob", false)
		_, bobPw := e.appPassword(t, "bob")
		if code, _, _ := e.do(t, "PROPFIND", cal, "bob", bobPw, depth, propfindBody); code != http.StatusForbidden {
			t.Errorf("bob on alice's calendar: %d, want 403", code)
		}
	})
	t.Run("a client's X-Remote-User is replaced", func(t *testing.T) {
		_, bobPw := e.appPassword(t, "bob")
		h := map[string]string{"Depth": "0", "X-Remote-User": "alice"}
		if code, _, _ := e.do(t, "PROPFIND", cal, "bob", bobPw, h, propfindBody); code != http.StatusForbidden {
			t.Errorf("bob claiming alice: %d, want 403", code)
		}
	})
	t.Run("revoke: the next request is 401", func(t *testing.T) {
		if err := e.g.store.RevokeAppPassword(e2eCtx(), "alice", calID); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := e.do(t, "PROPFIND", cal, "alice", calOnly, depth, propfindBody); code != http.StatusUnauthorized {
			t.Errorf("after revoke: %d, want 401", code)
		}
	})
	t.Run("curl PROPFIND", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		run := func(args ...string) string {
			cmd := exec.Command(curl, append([]string{"-sS", "--cacert", e.certFile, "-o", "/dev/null", "-w", "%{http_code}",
				"-X", "PROPFIND", "-H", "Depth: 0", e.base + cal}, args...)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v %s", err, out)
			}
			return string(out)
		}
		if got := run(); got != "401" {
			t.Errorf("curl without credentials: %s", got)
		}
		if got := run("-u", "alice:"+full); got != "207" {
			t.Errorf("curl with an app password: %s", got)
		}
	})
}

// TestDAVUpstreamHTTPS: an https upstream is verified against ca_file;
// without it the same upstream is refused (503), never used unverified.
func TestDAVUpstreamHTTPS(t *testing.T) {
	up := httptest.NewTLSServer(memdav.Handler([]string{"alice"}, ""))
	t.Cleanup(up.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	path := memdav.CalDAVPrefix + "alice/calendars/default/"
	for _, tc := range []struct {
		name  string
		extra []string
		want  int
	}{
		{"trusted", []string{"ca_file = " + strconv.Quote(ca)}, http.StatusMultiStatus},
		{"untrusted", nil, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startDAVE2E(t, davOptions{upstream: up.URL + "/", upstreamExtra: tc.extra})
			e.user(t, "alice", false)
			_, app := e.appPassword(t, "alice")
			if code, _, body := e.do(t, "PROPFIND", path, "alice", app, map[string]string{"Depth": "1"}, ""); code != tc.want {
				t.Errorf("PROPFIND: %d %s, want %d", code, body, tc.want)
			}
		})
	}
}
