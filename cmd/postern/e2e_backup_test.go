package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"github.com/postern-dev/postern/admin/api"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// The backup tests run the built binary as an operator does: `postern
// serve` in front of a private Dovecot, `postern store backup` through its
// control socket, `postern store restore` with the server stopped.

const backupPassphrase = "correct horse battery staple"

// fail runs the binary expecting a failure and returns its stderr.
func (s *served) fail(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := s.run("", nil, args...)
	if err == nil {
		t.Fatalf("postern %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	return errs
}

// privateFile writes a 0600 file in dir.
func privateFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// twoStepUser is an account with an app password, an authenticator and
// its backup codes, made in the store of a halted server.
type twoStepUser struct {
	name, password, appPassword, appPassID string
	codes                                  []string
}

func (s *served) addTwoStepUser(t *testing.T, name string) twoStepUser {
	t.Helper()
	u := twoStepUser{name: name, password: name + "-account-password"}
	s.withStore(t, func(st *authstore.Store) {
		ctx := e2eCtx()
		if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: u.password}); err != nil {
			t.Fatal(err)
		}
		enr, err := st.BeginTOTP(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := totp.GenerateCode(enr.Secret, time.Now())
		if u.codes, err = st.ConfirmTOTP(ctx, name, code); err != nil {
			t.Fatal(err)
		}
		ap, secret, err := st.CreateAppPassword(ctx, name, authstore.NewAppPassword{Name: "Phone"})
		if err != nil {
			t.Fatal(err)
		}
		u.appPassID, u.appPassword = ap.ID, strings.ReplaceAll(secret, " ", "")
	})
	s.secrets = append(s.secrets, w6Secret{"account password of " + name, name, u.password, ""},
		w6Secret{"app password of " + name, name, u.appPassword, ""})
	return u
}

// signInWithCode signs in on the admin API with the account password and
// then code, and returns the second step's status.
func (s *served) signInWithCode(t *testing.T, user, password, code string) int {
	t.Helper()
	base := "http://" + s.addr("admin") + "/api/v1/session"
	res := postJSON(t, base, "", "", map[string]string{"username": user, "password": password})
	var first struct {
		State     string `json:"state"`
		CSRFToken string `json:"csrf_token"`
	}
	json.NewDecoder(res.Body).Decode(&first)
	res.Body.Close()
	if res.StatusCode != 200 || first.State != "second_factor" {
		t.Fatalf("sign-in step one: %d %+v", res.StatusCode, first)
	}
	cookie := ""
	for _, c := range res.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-") { // the session cookie
			cookie = c.Name + "=" + c.Value
		}
	}
	res = postJSON(t, base+"/second-factor", cookie, first.CSRFToken, map[string]string{"code": code})
	res.Body.Close()
	return res.StatusCode
}

func postJSON(t *testing.T, url, cookie, csrf string, body any) *http.Response {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
		req.Header.Set(api.CSRFHeader, csrf)
	}
	res, err := (&http.Client{Timeout: e2eIO}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return res
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestS4_RestoreDoesNotResurrect: a backup taken at T0 while serving; at T1
// an app password is revoked and a backup code used; restoring T0 re-applies
// both from the replaced store's audit log, so after a restart the app
// password is refused over IMAP and the code on the web, while an unused
// code of the same set still works. The audit chain verifies across the
// restore, which carries the later events over and records itself.
func TestS4_RestoreDoesNotResurrect(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice")
	s := startServed(t, peer)
	s.stopServe()
	alice := s.addTwoStepUser(t, "alice")
	s.start(t)
	dir := t.TempDir()
	pass := privateFile(t, dir, "pass", backupPassphrase+"\n")
	s.secrets = append(s.secrets, w6Secret{"backup passphrase", "", backupPassphrase, ""})
	backup := filepath.Join(dir, "t0.age")

	out := s.cli(t, "", "store", "backup", "--out", backup, "--passphrase-file", pass)
	if !strings.Contains(out, "passphrase encrypted") {
		t.Errorf("store backup: %q", out)
	}
	if got := s.imapTry(t, "alice", alice.appPassword); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("the app password before T1: %q", got)
	}
	s.cli(t, "", "app-password", "revoke", "alice", alice.appPassID)
	if code := s.signInWithCode(t, "alice", alice.password, alice.codes[0]); code != 200 {
		t.Fatalf("using a backup code at T1: %d", code)
	}

	s.stopServe()
	out = s.cli(t, "", "store", "restore", "--in", backup, "--passphrase-file", pass)
	for _, want := range []string{`app password "Phone" (` + alice.appPassID + `) revoked`, "1 backup codes used since the backup stay used",
		"kept ", "later audit event(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore report lacks %q:\n%s", want, out)
		}
	}
	s.start(t)

	if got := s.imapTry(t, "alice", alice.appPassword); got != imapFailure {
		t.Errorf("the app password revoked at T1, after restoring T0: %q", got)
	}
	if code := s.signInWithCode(t, "alice", alice.password, alice.codes[0]); code != 401 {
		t.Errorf("the backup code used at T1, after restoring T0: %d", code)
	}
	if code := s.signInWithCode(t, "alice", alice.password, alice.codes[1]); code != 200 {
		t.Errorf("an unused backup code after the restore: %d", code)
	}
	if out := s.cli(t, "", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit verify after the restore: %q", out)
	}
	var evs []authstore.Event
	json.Unmarshal([]byte(s.cli(t, "", "audit", "tail", "-n", "1000", "--json")), &evs)
	kinds := map[string]bool{}
	for _, e := range evs {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"store.backup", "apppw.revoke", "store.reapply", "store.restore"} {
		if !kinds[k] {
			t.Errorf("no %s event in the audit log after the restore", k)
		}
	}
}

// TestS7_RestoreRefusalsChangeNothing: while serve runs a restore is
// refused; a wrong passphrase and a backup with one flipped byte are
// refused with a clear message, and the store file is byte for byte the
// same after each.
func TestS7_RestoreRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "bob")
	s := startServed(t, peer)
	dir := t.TempDir()
	pass := privateFile(t, dir, "pass", backupPassphrase+"\n")
	wrong := privateFile(t, dir, "wrong", "not the passphrase at all\n")
	s.secrets = append(s.secrets, w6Secret{"backup passphrase", "", backupPassphrase, ""})
	backup := filepath.Join(dir, "b.age")
	s.cli(t, "", "store", "backup", "--out", backup, "--passphrase-file", pass)

	if errs := s.fail(t, "store", "restore", "--in", backup, "--passphrase-file", pass); !strings.Contains(errs, "stop it first") {
		t.Errorf("restore while serving: %q", errs)
	}
	s.stopServe()
	db := filepath.Join(s.data, "postern.db")
	before := fileSum(t, db)

	if errs := s.fail(t, "store", "restore", "--in", backup, "--passphrase-file", wrong); !strings.Contains(errs, "wrong passphrase") ||
		!strings.Contains(errs, "was not changed") {
		t.Errorf("wrong passphrase: %q", errs)
	}
	if fileSum(t, db) != before {
		t.Error("a refused restore (wrong passphrase) changed the store")
	}

	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	flipped := filepath.Join(dir, "flipped.age")
	os.WriteFile(flipped, data, 0o600)
	if errs := s.fail(t, "store", "restore", "--in", flipped, "--passphrase-file", pass); !strings.Contains(errs, "damaged") ||
		!strings.Contains(errs, "was not changed") {
		t.Errorf("flipped byte: %q", errs)
	}
	if fileSum(t, db) != before {
		t.Error("a refused restore (flipped byte) changed the store")
	}
	if matches, _ := filepath.Glob(db + ".*"); len(matches) > 0 {
		t.Errorf("refused restores left files beside the store: %v", matches)
	}
	s.start(t)
}

// TestS7_BackupHoldsNoKeyAndNoPlaintext: a backup, by passphrase or to an
// age recipient, holds none of the key file's bytes and no record in
// clear; the age tool opens both (the passphrase one through its terminal
// prompt) and what it opens is the store, user names and all, still
// without the keys.
func TestS7_BackupHoldsNoKeyAndNoPlaintext(t *testing.T) {
	t.Parallel()
	ageBin := testpeer.RequirePeer(t, "age")
	peer := startPeer(t, "zebediah")
	s := startServed(t, peer)
	s.cli(t, "zebediah-account-password\n", "user", "add", "zebediah", "--password-stdin")
	s.secrets = append(s.secrets, w6Secret{"account password of zebediah", "zebediah", "zebediah-account-password", ""})
	dir := t.TempDir()
	identity := filepath.Join(dir, "id.txt")
	if out, err := exec.Command(ageBin+"-keygen", "-o", identity).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v %s", err, out)
	}
	idText, _ := os.ReadFile(identity)
	recipient := regexp.MustCompile(`age1[0-9a-z]+`).FindString(string(idText))
	pass := privateFile(t, dir, "pass", backupPassphrase+"\n")
	s.secrets = append(s.secrets, w6Secret{"backup passphrase", "", backupPassphrase, ""})
	byKey, byPass := filepath.Join(dir, "key.age"), filepath.Join(dir, "pass.age")
	s.cli(t, "", "store", "backup", "--out", byKey, "--recipient", recipient)
	s.cli(t, "", "store", "backup", "--out", byPass, "--passphrase-file", pass)

	keys, err := authstore.LoadKeyFile(filepath.Join(filepath.Dir(s.data), "keys", "postern.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile, _ := os.ReadFile(filepath.Join(filepath.Dir(s.data), "keys", "postern.key"))
	forbidden := map[string][]byte{"pepper": keys.Pepper, "sealing key": keys.Seal, "key file": keyFile,
		"user name": []byte("zebediah"), "bucket name": []byte("apppw_index")}
	for _, f := range []string{byKey, byPass} {
		data, _ := os.ReadFile(f)
		if !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) {
			t.Errorf("%s is not an age file", f)
		}
		for what, b := range forbidden {
			if bytes.Contains(data, b) {
				t.Errorf("%s holds the %s", filepath.Base(f), what)
			}
		}
	}

	plain := filepath.Join(dir, "by-identity.db")
	if out, err := exec.Command(ageBin, "-d", "-i", identity, "-o", plain, byKey).CombinedOutput(); err != nil {
		t.Fatalf("age -d -i: %v %s", err, out)
	}
	checkOpened(t, plain, keys)
	if _, err := exec.LookPath("script"); err == nil {
		plain := filepath.Join(dir, "by-passphrase.db")
		cmd := exec.Command("script", "-qec", ageBin+" -d -o "+plain+" "+byPass, "/dev/null")
		cmd.Stdin = strings.NewReader(backupPassphrase + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("age -d at its passphrase prompt: %v %s", err, out)
		}
		checkOpened(t, plain, keys)
	}
}

// checkOpened: what age decrypted is the store (the user name is there in
// clear) and still holds no key.
func checkOpened(t *testing.T, path string, keys *authstore.Keys) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("zebediah")) {
		t.Errorf("%s: the decrypted backup does not hold the store's records", filepath.Base(path))
	}
	if bytes.Contains(data, keys.Pepper) || bytes.Contains(data, keys.Seal) {
		t.Errorf("%s: the decrypted backup holds key bytes", filepath.Base(path))
	}
	st, err := authstore.Open(path, authstore.Options{Keys: keys})
	if err != nil {
		t.Fatalf("the decrypted backup does not open as a store: %v", err)
	}
	defer st.Close()
	if _, err := st.GetUser(context.Background(), "zebediah"); err != nil {
		t.Errorf("the decrypted store: %v", err)
	}
}

// TestS7_RestoreOverUnreadableStore: when the store being replaced cannot
// be read, the restore says nothing could be re-applied and lists the app
// passwords live in the backup; the restored store serves them.
func TestS7_RestoreOverUnreadableStore(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "carol")
	s := startServed(t, peer)
	s.stopServe()
	carol := s.addTwoStepUser(t, "carol")
	s.start(t)
	dir := t.TempDir()
	pass := privateFile(t, dir, "pass", backupPassphrase+"\n")
	s.secrets = append(s.secrets, w6Secret{"backup passphrase", "", backupPassphrase, ""})
	backup := filepath.Join(dir, "b.age")
	s.cli(t, "", "store", "backup", "--out", backup, "--passphrase-file", pass)
	s.stopServe()

	db := filepath.Join(s.data, "postern.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 4096+16) // the second meta page and beyond
	f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 16)
	f.Close()

	out := s.cli(t, "", "store", "restore", "--in", backup, "--passphrase-file", pass)
	for _, want := range []string{"nothing could be re-applied", "could not be read", "app passwords live in the backup (1)",
		carol.appPassID, "Phone"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore report lacks %q:\n%s", want, out)
		}
	}
	s.start(t)
	if got := s.imapTry(t, "carol", carol.appPassword); !strings.HasPrefix(got, "a OK") {
		t.Errorf("the restored app password: %q", got)
	}
	if _, errs, err := s.run("", nil, "audit", "verify"); err != nil {
		t.Errorf("audit verify: %v %s", err, errs)
	}
}
