package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// TestS2_FullDiskServe: `postern serve` with its data directory on a small
// tmpfs that fills up. Admin changes then answer 503 with a clear message
// and leave nothing half-done; a TOTP or backup-code sign-in is either
// recorded (and refused when replayed) or refused with 503, never let in
// unrecorded; wrong passwords are still refused and charged; app passwords
// still log in and an established IMAP session keeps relaying. Once space
// is freed, everything works again without a restart, and after one every
// acknowledged change is there (S2).
func TestS2_FullDiskServe(t *testing.T) {
	t.Parallel()
	const budget = 3
	peer := startPeer(t, "s2totp", "s2mail", "s2guess")
	s := newServed(t, peer, e2eOptions{limits: []string{fmt.Sprintf("user_failure_budget = %d", budget)}})
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		t.Fatal(err)
	}
	testpeer.Tmpfs(t, s.data, 16<<20)
	t.Cleanup(s.stop) // before the unmount: stopping reads the audit log
	s.cli(t, "", "init")
	var token, mailApp string
	var f *factorUser
	s.withStore(t, func(st *authstore.Store) {
		ctx := e2eCtx()
		var err error
		if _, token, err = st.CreateToken(ctx, authstore.NewToken{Name: "s2", Role: authstore.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"s2mail", "s2guess"} {
			if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: "s2-" + name + "-password"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, mailApp, err = st.CreateAppPassword(ctx, "s2mail", authstore.NewAppPassword{Name: "phone"}); err != nil {
			t.Fatal(err)
		}
		mailApp = strings.ReplaceAll(mailApp, " ", "")
		f = newFactorUser(t, st, "s2totp", "127.0.2.1")
	})
	s.secrets = append(s.secrets, w6Secret{"app password of s2mail", "s2mail", mailApp, ""},
		w6Secret{"account password of s2totp", f.name, f.password, ""}, w6Secret{"TOTP secret of s2totp", f.name, f.secret, ""})
	s.start(t)
	api := newAPIClient(s.addr("admin"), "127.0.0.1", token)
	relay, _ := s.dialIMAP(t)
	if err := relay.Login("s2mail", mailApp).Wait(); err != nil {
		t.Fatalf("IMAP login before the disk fills: %v", err)
	}
	d := &fullDisk{t: t, s: s, api: api}
	d.createAppPassword("before the disk filled")

	filler, n := testpeer.FillDisk(t, s.data)
	created, refusal := d.createUntilRefused()
	t.Logf("filled the disk with %d bytes; %d app passwords were created before one was refused: %d %s", n, created, refusal.status, refusal.body)
	d.checkRefusal(refusal)
	d.expectAppPasswords()
	codes := map[string]string{"TOTP": f.code(t, max(f.last+1, totpStep(time.Now()))), "backup code": f.unused[0]}
	refused := map[string]bool{}
	for what, code := range codes {
		refused[what] = d.signInOnFullDisk(f, code, what)
	}
	d.wrongPasswordsCharged("s2guess", budget)
	if got := s.imapTry(t, "s2mail", mailApp); !strings.HasPrefix(got, "a OK") {
		t.Errorf("app password login on a full disk: %q", got)
	}
	relayMoves(t, relay, "on a full disk")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	d.createAppPassword("after space came back")
	for what, code := range codes {
		if !refused[what] {
			continue // recorded on the full disk, and refused when replayed
		}
		if ans, err := api.signIn(f.name, f.password, code); err != nil || ans.status != http.StatusOK {
			t.Errorf("%s refused on the full disk, once space is back: %v %d %s, want it to sign in", what, err, ans.status, ans.body)
		}
	}
	relayMoves(t, relay, "after space came back")
	if out := s.cli(t, "", "audit", "verify"); !strings.Contains(out, "audit chain intact") {
		t.Errorf("audit verify after the full disk: %s", out)
	}

	s.restart(t)
	d.api = newAPIClient(s.addr("admin"), "127.0.0.1", token)
	d.expectAppPasswords()
	for what, code := range codes {
		if ans, err := d.api.signIn(f.name, f.password, code); err != nil || ans.status != http.StatusUnauthorized {
			t.Errorf("the used %s after a restart: %v %d %s, want 401", what, err, ans.status, ans.body)
		}
	}
}

// fullDisk drives the admin API of a server whose disk fills up, and
// remembers what it acknowledged.
type fullDisk struct {
	t     *testing.T
	s     *served
	api   *apiClient
	names []string // app passwords of s2mail created through the API
}

// createAppPassword creates an app password for s2mail and fails the test
// unless that is acknowledged.
func (d *fullDisk) createAppPassword(name string) {
	d.t.Helper()
	if ans := d.create(name); ans.status != http.StatusOK {
		d.t.Fatalf("create app password %q: %d %s", name, ans.status, ans.body)
	}
}

func (d *fullDisk) create(name string) apiAnswer {
	d.t.Helper()
	ans, err := d.api.call("POST", userPath("s2mail", "/app-passwords"), map[string]string{"name": name}, "", "")
	if err != nil {
		d.t.Fatalf("create app password: %v", err)
	}
	if ans.status == http.StatusOK {
		d.names = append(d.names, name)
	}
	return ans
}

// createUntilRefused creates app passwords (each adds a record, an index
// entry and an audit event: new space) until the server refuses one.
func (d *fullDisk) createUntilRefused() (int, apiAnswer) {
	d.t.Helper()
	for i := range 1000 {
		if ans := d.create(fmt.Sprint("on a full disk ", i)); ans.status != http.StatusOK {
			return i, ans
		}
	}
	d.t.Fatal("1,000 app passwords created on a full disk")
	return 0, apiAnswer{}
}

// checkRefusal wants 503 with the API's own words and a Retry-After.
func (d *fullDisk) checkRefusal(ans apiAnswer) {
	d.t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if ans.status != http.StatusServiceUnavailable || ans.decode(&body) != nil ||
		body.Error.Code != "unavailable" || body.Error.Message == "" {
		d.t.Errorf("an admin change on a full disk: %d %s, want 503 unavailable with a message", ans.status, ans.body)
	}
}

// expectAppPasswords wants exactly the acknowledged app passwords of
// s2mail, besides the one it was created with: nothing half-created.
func (d *fullDisk) expectAppPasswords() {
	d.t.Helper()
	ans, err := d.api.call("GET", userPath("s2mail", "/app-passwords"), nil, "", "")
	var list struct {
		AppPasswords []authstore.AppPassword `json:"app_passwords"`
	}
	if err != nil || ans.status != http.StatusOK || ans.decode(&list) != nil {
		d.t.Fatalf("list app passwords: %v %d %s", err, ans.status, ans.body)
	}
	var got []string
	for _, ap := range list.AppPasswords {
		if ap.Name != "phone" {
			got = append(got, ap.Name)
		}
	}
	if len(got) != len(d.names) {
		d.t.Errorf("%d app passwords stored, %d acknowledged:\n%q\n%q", len(got), len(d.names), got, d.names)
	}
}

// signInOnFullDisk signs in with code on the full disk. A sign-in the
// server acknowledges must have recorded the code: its replay is refused.
// Otherwise it must be refused as unavailable, and signInOnFullDisk
// reports it refused, to be tried again once space is back.
func (d *fullDisk) signInOnFullDisk(f *factorUser, code, what string) (refused bool) {
	d.t.Helper()
	ans, err := d.api.signIn(f.name, f.password, code)
	switch {
	case err == nil && ans.status == http.StatusOK:
		d.t.Logf("%s sign-in on the full disk: recorded in pages the store had free", what)
		if again, err := d.api.signIn(f.name, f.password, code); err != nil || again.status != http.StatusUnauthorized {
			d.t.Errorf("%s replayed on the full disk: %v %d %s, want 401", what, err, again.status, again.body)
		}
		return false
	case ans.status == http.StatusServiceUnavailable:
		d.t.Logf("%s sign-in on the full disk: refused, %s", what, ans.body)
		return true
	}
	d.t.Errorf("%s sign-in on the full disk: %v %d %s, want it recorded or refused with 503", what, err, ans.status, ans.body)
	return false
}

// wrongPasswordsCharged spends user's failure budget over IMAP on the full
// disk; the right password is refused after it, from a fresh source.
func (d *fullDisk) wrongPasswordsCharged(user string, budget int) {
	d.t.Helper()
	for i := range budget {
		if got := d.s.imapTry(d.t, user, fmt.Sprint("wrong-", i)); got != imapFailure {
			d.t.Errorf("wrong password %d on a full disk: %q", i, got)
		}
	}
	if got, err := rawIMAPLogin(d.s, "127.0.2.9", user, "s2-"+user+"-password"); err != nil || got != imapFailure {
		d.t.Errorf("right password past the budget spent on a full disk: %q %v, want %q", got, err, imapFailure)
	}
}

// relayMoves appends a message through an established IMAP session and
// sees the mailbox grow by it.
func relayMoves(t *testing.T, c *imapclient.Client, when string) {
	t.Helper()
	before, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", when, err)
	}
	if err := appendMessage(c, "INBOX", message("relayed "+when, "through an established session")); err != nil {
		t.Fatalf("APPEND %s: %v", when, err)
	}
	after, err := c.Select("INBOX", nil).Wait()
	if err != nil || after.NumMessages != before.NumMessages+1 {
		t.Fatalf("SELECT %s: %v, %d messages after %d and one more", when, err, after.NumMessages, before.NumMessages)
	}
}
