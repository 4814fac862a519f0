package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// crashKillsEnv sets how many times TestS1_CrashLoop kills the server:
// SECURITY.md asks for 200 and more, which takes minutes; CI kills 20
// times. The full run:
//
//	POSTERN_CRASH_KILLS=200 go test -count=1 -timeout 60m -run TestS1_CrashLoop -v ./cmd/postern
const crashKillsEnv = "POSTERN_CRASH_KILLS"

// envCount is a count from the environment variable name, def when it is
// unset; anything below least fails the test.
func envCount(t *testing.T, name string, def, least int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want a number of at least %d", name, v, least)
	}
	return n
}

// TestS1_CrashLoop: a real `postern serve` takes admin and sign-in writes
// (app passwords created and revoked over the API, TOTP and backup-code
// sign-ins on the web, admin-issued codes, wrong passwords over IMAP)
// and is killed with SIGKILL at a random moment, again and again. A write
// counts as acknowledged only once its answer arrived. After every kill
// the store opens and checks clean and `postern audit verify` passes; after
// every restart every acknowledged change is there: a created app password
// exists and logs in, a revoked one stays revoked and is refused, a used
// code is refused, a used TOTP step is not accepted again, an issued code
// still works. A write in flight at the kill may have happened or not;
// either is fine, and what the store says settles it (SECURITY.md S1).
func TestS1_CrashLoop(t *testing.T) {
	t.Parallel()
	kills := envCount(t, crashKillsEnv, 20, 1)
	users := []string{"s1apps", "s1guess", "s1totp0", "s1totp1", "s1totp2"}
	peer := startPeer(t, users...)
	open := []string{"user_failure_budget = 1000000", "user_source_failure_budget = 1000000", "source_free_failures = 1000"}
	s := newServed(t, peer, e2eOptions{limits: open})
	s.cli(t, "", "init")
	w := newCrashWorld(t, s, users[2:])
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("kills: %d, seed %d", kills, seed)
	for range kills {
		if rng.IntN(4) == 0 {
			w.killStarting(t, time.Duration(rng.IntN(150))*time.Millisecond)
		}
		w.restart(t)
		w.verify(t)
		w.load(t, time.Duration(50+rng.IntN(1200))*time.Millisecond)
		w.checkStore(t)
	}
	w.restart(t)
	w.verify(t)
	t.Logf("acknowledged: %s", w.stats)
	if kills >= 10 && (w.stats.totpReplays == 0 || w.stats.codeReplays == 0 || w.stats.revokedRefused == 0) {
		t.Errorf("some kind of change was never checked after a restart: %s", w.stats)
	}
}

// crashStats counts what the loop acknowledged and checked.
type crashStats struct {
	mu                                                 sync.Mutex
	created, revoked, totpSignIns, codeSignIns, issued int
	wrongPasswords, uncertain, startupKills            int
	totpReplays, codeReplays, revokedRefused           int
	restart                                            time.Duration // longest start to listening
}

func (c *crashStats) add(field *int) {
	c.mu.Lock()
	*field++
	c.mu.Unlock()
}

func (c *crashStats) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d app passwords created, %d revoked, %d TOTP sign-ins, %d code sign-ins, %d codes issued, "+
		"%d wrong passwords answered; %d writes in flight at a kill, %d more kills while starting; checked after restarts: %d TOTP replays, "+
		"%d used codes, %d revoked app passwords refused; longest restart %v",
		c.created, c.revoked, c.totpSignIns, c.codeSignIns, c.issued, c.wrongPasswords, c.uncertain, c.startupKills,
		c.totpReplays, c.codeReplays, c.revokedRefused, c.restart.Round(time.Millisecond))
}

// crashWorld is what the clients were told, against which every restart
// is checked.
type crashWorld struct {
	s       *served
	token   string
	apps    *crashApps
	factors []*factorUser
	guess   string
	stats   *crashStats
}

// newCrashWorld creates the accounts in the store before the first start:
// factor users with two-step verification and backup codes, a user whose
// app passwords come and go, a user who gets wrong passwords.
func newCrashWorld(t *testing.T, s *served, factorUsers []string) *crashWorld {
	t.Helper()
	w := &crashWorld{s: s, apps: &crashApps{user: "s1apps", byID: map[string]*crashApp{}, strangers: map[string]bool{}}, guess: "s1guess", stats: &crashStats{}}
	s.withStore(t, func(st *authstore.Store) {
		ctx := e2eCtx()
		var err error
		if _, w.token, err = st.CreateToken(ctx, authstore.NewToken{Name: "s1", Role: authstore.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{w.apps.user, w.guess} {
			if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: "s1-" + name + "-password"}); err != nil {
				t.Fatal(err)
			}
		}
		for i, name := range factorUsers {
			w.factors = append(w.factors, newFactorUser(t, st, name, fmt.Sprintf("127.0.1.%d", i+1)))
		}
	})
	for _, f := range w.factors {
		s.secrets = append(s.secrets, w6Secret{"account password of " + f.name, f.name, f.password, ""},
			w6Secret{"TOTP secret of " + f.name, f.name, f.secret, ""})
	}
	return w
}

// withStore opens the store as the CLI does while no server runs.
func (s *served) withStore(t *testing.T, fn func(*authstore.Store)) {
	t.Helper()
	data, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, s.conf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	fn(st)
}

// restart starts serve on the store the last kill left.
func (w *crashWorld) restart(t *testing.T) {
	t.Helper()
	begin := time.Now()
	w.s.start(t)
	took := time.Since(begin)
	w.stats.mu.Lock()
	w.stats.restart = max(w.stats.restart, took)
	w.stats.mu.Unlock()
}

// killStarting kills serve d after it was started, as it opens and checks
// the store, before it serves anyone; the store must check clean.
func (w *crashWorld) killStarting(t *testing.T, d time.Duration) {
	t.Helper()
	w.s.spawn(t)
	time.Sleep(d)
	w.s.kill(t)
	w.stats.add(&w.stats.startupKills)
	w.checkStore(t)
}

// load runs every client until the server is killed after d, then waits
// for them; what had no answer by then stays uncertain.
func (w *crashWorld) load(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := w.s.addr("admin")
	var wg sync.WaitGroup
	failures := make(chan error, 16)
	run := func(fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				failures <- err
			}
		})
	}
	run(func(ctx context.Context) error {
		return w.apps.churn(ctx, newAPIClient(addr, "127.0.0.1", w.token), w.stats)
	})
	run(func(ctx context.Context) error { return w.wrongPasswords(ctx) })
	for _, f := range w.factors {
		run(func(ctx context.Context) error { return f.signIns(ctx, newAPIClient(addr, f.src, w.token), w.stats) })
	}
	time.Sleep(d)
	if !w.s.running() {
		t.Fatalf("postern serve died by itself under load: %v", w.s.waitErr)
	}
	w.s.kill(t)
	cancel()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
}

// checkStore runs `postern audit verify` on the store the killed server
// left: the CLI opens it directly (no server answers on the socket),
// walking every page, and checks the whole audit chain.
func (w *crashWorld) checkStore(t *testing.T) {
	t.Helper()
	out, errs, err := w.s.run("", nil, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("after a kill: postern audit verify: %v\nstdout: %s\nstderr: %s", err, out, errs)
	}
}

// verify checks, on the restarted server, everything acknowledged so far,
// and settles what was in flight at the kill.
func (w *crashWorld) verify(t *testing.T) {
	t.Helper()
	addr := w.s.addr("admin")
	w.apps.verify(t, w.s, newAPIClient(addr, "127.0.0.1", w.token), w.stats)
	for _, f := range w.factors {
		f.verify(t, newAPIClient(addr, f.src, w.token), w.stats)
	}
}

// wrongPasswords sends wrong passwords over IMAP: failure charges, and
// audit events written in batches while the other writes go on.
func (w *crashWorld) wrongPasswords(ctx context.Context) error {
	for i := 0; ctx.Err() == nil; i++ {
		got, err := rawIMAPLogin(w.s, "", w.guess, fmt.Sprint("wrong-", i))
		switch {
		case err != nil:
			<-ctx.Done() // the kill: the answer never came
		case got != imapFailure:
			return fmt.Errorf("wrong password over IMAP: %q, want %q", got, imapFailure)
		default:
			w.stats.add(&w.stats.wrongPasswords)
		}
	}
	return nil
}

// rawIMAPLogin logs in over implicit TLS from src and returns the tagged
// answer, or the error that kept it from arriving.
func rawIMAPLogin(s *served, src, user, secret string) (string, error) {
	return imapLoginWithin(s, src, user, secret, e2eIO)
}

// imapLoginWithin is rawIMAPLogin waiting up to patience for the answer.
func imapLoginWithin(s *served, src, user, secret string, patience time.Duration) (string, error) {
	conn, err := tls.DialWithDialer(dialer(src), "tcp", s.addr("imaps"), s.clientTLS())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(patience))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(conn, "a LOGIN %q %q\r\n", user, secret); err != nil {
		return "", err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(line, "a ") {
			return line, err
		}
	}
}

// crashApp is one app password the loop created.
type crashApp struct {
	id, secret string
	revoked    bool // acknowledged
	revoking   bool // a revocation was in flight at a kill
	checked    bool // its state was checked by a login after a restart
}

// crashApps is the app passwords of one user, created and revoked over
// the admin API.
type crashApps struct {
	user string
	mu   sync.Mutex
	byID map[string]*crashApp
	live []string
	// creating counts creations in flight at a kill; the store may hold
	// that many app passwords nobody was told about: strangers.
	creating  int
	strangers map[string]bool
}

// churn keeps about five app passwords live: it creates one, or revokes
// the oldest.
func (a *crashApps) churn(ctx context.Context, c *apiClient, stats *crashStats) error {
	for ctx.Err() == nil {
		a.mu.Lock()
		revoke := len(a.live) >= 5
		a.mu.Unlock()
		var err error
		if revoke {
			err = a.revokeOldest(ctx, c, stats)
		} else {
			err = a.create(ctx, c, stats)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *crashApps) create(ctx context.Context, c *apiClient, stats *crashStats) error {
	ans, err := c.call("POST", userPath(a.user, "/app-passwords"), map[string]string{"name": "crash loop"}, "", "")
	if err != nil {
		a.mu.Lock()
		a.creating++
		a.mu.Unlock()
		inFlight(ctx, stats)
		return nil
	}
	var out struct {
		AppPassword authstore.AppPassword `json:"app_password"`
		Secret      string                `json:"secret"`
	}
	if ans.status != http.StatusOK || ans.decode(&out) != nil || out.Secret == "" {
		return fmt.Errorf("create app password: %d %s", ans.status, ans.body)
	}
	a.mu.Lock()
	a.byID[out.AppPassword.ID] = &crashApp{id: out.AppPassword.ID, secret: strings.ReplaceAll(out.Secret, " ", "")}
	a.live = append(a.live, out.AppPassword.ID)
	a.mu.Unlock()
	stats.add(&stats.created)
	return nil
}

func (a *crashApps) revokeOldest(ctx context.Context, c *apiClient, stats *crashStats) error {
	a.mu.Lock()
	app := a.byID[a.live[0]]
	a.live = a.live[1:]
	app.revoking = true
	a.mu.Unlock()
	ans, err := c.call("DELETE", userPath(a.user, "/app-passwords/", app.id), nil, "", "")
	if err != nil {
		inFlight(ctx, stats)
		return nil
	}
	if ans.status != http.StatusNoContent {
		return fmt.Errorf("revoke app password %s: %d %s", app.id, ans.status, ans.body)
	}
	a.mu.Lock()
	app.revoking, app.revoked, app.checked = false, true, false
	a.mu.Unlock()
	stats.add(&stats.revoked)
	return nil
}

// verify compares the store's list with what was acknowledged and logs in
// with every app password whose state was not yet checked by a login.
func (a *crashApps) verify(t *testing.T, s *served, c *apiClient, stats *crashStats) {
	t.Helper()
	ans, err := c.call("GET", userPath(a.user, "/app-passwords"), nil, "", "")
	var list struct {
		AppPasswords []authstore.AppPassword `json:"app_passwords"`
	}
	if err != nil || ans.status != http.StatusOK || ans.decode(&list) != nil {
		t.Fatalf("list app passwords after a restart: %v %d %s", err, ans.status, ans.body)
	}
	stored := map[string]authstore.AppPassword{}
	for _, ap := range list.AppPasswords {
		stored[ap.ID] = ap
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range stored {
		if a.byID[id] == nil {
			a.strangers[id] = true
		}
	}
	if len(a.strangers) > a.creating {
		t.Errorf("the store holds %d app passwords nobody was told about, but only %d creations were in flight at a kill", len(a.strangers), a.creating)
	}
	var revoked, live []*crashApp
	for _, app := range a.byID {
		a.settle(t, app, stored)
		switch {
		case app.checked:
		case app.revoked:
			revoked = append(revoked, app)
		default:
			live = append(live, app)
		}
	}
	// A refused login costs a password hash's worth of time; the store's
	// list above covers every app password on every restart, and a few
	// logins each time show that the list is what the decision reads.
	for _, app := range append(revoked[:min(len(revoked), 2)], live[:min(len(live), 2)]...) {
		a.login(t, s, app, stats)
	}
}

// settle checks one app password against the store's list.
func (a *crashApps) settle(t *testing.T, app *crashApp, stored map[string]authstore.AppPassword) {
	t.Helper()
	ap, ok := stored[app.id]
	switch {
	case !ok:
		t.Errorf("acknowledged app password %s is gone after a restart", app.id)
		return
	case app.revoking:
		app.revoking, app.revoked = false, !ap.Revoked.IsZero()
		if !app.revoked {
			a.live = append(a.live, app.id)
		}
	case app.revoked && ap.Revoked.IsZero():
		t.Errorf("acknowledged revocation of app password %s is undone after a restart", app.id)
	case !app.revoked && !ap.Revoked.IsZero():
		t.Errorf("app password %s is revoked after a restart, but no revocation was sent", app.id)
	}
}

// login checks an app password's state by logging in with it.
func (a *crashApps) login(t *testing.T, s *served, app *crashApp, stats *crashStats) {
	t.Helper()
	app.checked = true
	got := s.imapTry(t, a.user, app.secret)
	switch {
	case app.revoked && got != imapFailure:
		t.Errorf("revoked app password %s after a restart: %q, want %q", app.id, got, imapFailure)
	case app.revoked:
		stats.add(&stats.revokedRefused)
	case !strings.HasPrefix(got, "a OK"):
		t.Errorf("live app password %s after a restart: %q, want a OK", app.id, got)
	}
}

// factorUser is a user with two-step verification who signs in on the
// web over and over, from a source of its own.
type factorUser struct {
	name, password, secret, src string

	// last is the TOTP step of the last acknowledged sign-in; pending is a
	// step sent when the server was killed; replayed is the last step
	// replayed after a restart.
	last, pending, replayed int64
	// unused are backup codes never sent; pendingCode was sent when the
	// server was killed; used were acknowledged since the last restart.
	unused      []string
	pendingCode string
	used        []string
	// issued is an admin-issued code acknowledged and not sent yet;
	// usedIssued is the last one, acknowledged as used since the last
	// restart and not voided by a later issue.
	issued, usedIssued string
}

func newFactorUser(t *testing.T, st *authstore.Store, name, src string) *factorUser {
	t.Helper()
	ctx := e2eCtx()
	f := &factorUser{name: name, password: "s1-" + name + "-password", src: src}
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: f.password}); err != nil {
		t.Fatal(err)
	}
	enr, err := st.BeginTOTP(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code, err := totp.GenerateCode(enr.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if f.unused, err = st.ConfirmTOTP(ctx, name, code); err != nil {
		t.Fatal(err)
	}
	f.secret, f.last = enr.Secret, totpStep(now)
	return f
}

func totpStep(at time.Time) int64 { return at.Unix() / 30 }

func (f *factorUser) code(t *testing.T, step int64) string {
	code, err := totp.GenerateCode(f.secret, time.Unix(step*30, 0))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// signIns alternates TOTP sign-ins, on each step the server accepts (the
// current and the next), with backup-code and admin-issued-code sign-ins
// while it waits for the next step.
func (f *factorUser) signIns(ctx context.Context, c *apiClient, stats *crashStats) error {
	for ctx.Err() == nil {
		step := max(f.last+1, totpStep(time.Now()))
		var err error
		if step <= totpStep(time.Now())+1 {
			err = f.totpSignIn(ctx, c, step, stats)
		} else {
			err = f.codeSignIn(ctx, c, stats)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *factorUser) totpSignIn(ctx context.Context, c *apiClient, step int64, stats *crashStats) error {
	f.pending = step
	code, err := totp.GenerateCode(f.secret, time.Unix(step*30, 0))
	if err != nil {
		return err
	}
	if acked, err := f.signInAcked(ctx, c, code, fmt.Sprint("TOTP step ", step), stats); !acked {
		return err
	}
	f.last, f.pending = step, 0
	stats.add(&stats.totpSignIns)
	return nil
}

// signInAcked signs in with code during the load: true once the server
// acknowledged it, false with no error when the answer never came (the
// kill), an error for any other answer.
func (f *factorUser) signInAcked(ctx context.Context, c *apiClient, code, what string, stats *crashStats) (bool, error) {
	ans, err := c.signIn(f.name, f.password, code)
	switch {
	case err != nil && ans.status == 0:
		inFlight(ctx, stats)
		return false, nil
	case err != nil || ans.status != http.StatusOK:
		return false, fmt.Errorf("sign-in of %s with %s: %v %d %s", f.name, what, err, ans.status, ans.body)
	}
	return true, nil
}

// inFlight notes a write whose answer never came and waits for the kill
// that cut it off to be over.
func inFlight(ctx context.Context, stats *crashStats) {
	stats.add(&stats.uncertain)
	<-ctx.Done()
}

// codeSignIn uses the next backup code, or an admin-issued code, issuing
// one first when there is none.
func (f *factorUser) codeSignIn(ctx context.Context, c *apiClient, stats *crashStats) error {
	if len(f.unused) == 0 && f.issued == "" {
		return f.issue(ctx, c, stats)
	}
	code, fromSet := f.issued, len(f.unused) > 0
	if fromSet {
		code, f.unused = f.unused[0], f.unused[1:]
	} else {
		f.issued = ""
	}
	f.pendingCode = code
	if acked, err := f.signInAcked(ctx, c, code, "a code", stats); !acked {
		return err
	}
	f.pendingCode = ""
	if fromSet {
		f.used = append(f.used, code)
	} else {
		f.usedIssued = code
	}
	stats.add(&stats.codeSignIns)
	return nil
}

func (f *factorUser) issue(ctx context.Context, c *apiClient, stats *crashStats) error {
	// A new code voids the one before: once this issue may have happened,
	// a refusal of the last used code proves nothing.
	f.usedIssued = ""
	ans, err := c.call("POST", userPath(f.name, "/backup-code"), map[string]string{}, "", "")
	if err != nil {
		inFlight(ctx, stats)
		return nil
	}
	var out struct {
		Code string `json:"code"`
	}
	if ans.status != http.StatusOK || ans.decode(&out) != nil || out.Code == "" {
		return fmt.Errorf("issue a code for %s: %d %s", f.name, ans.status, ans.body)
	}
	f.issued = out.Code
	stats.add(&stats.issued)
	return nil
}

// verify checks the factor user's acknowledged sign-ins after a restart,
// then settles the one in flight at the kill, if any.
func (f *factorUser) verify(t *testing.T, c *apiClient, stats *crashStats) {
	t.Helper()
	f.verifyTOTP(t, c, stats)
	for _, code := range append(f.used, f.usedIssued) {
		if code == "" {
			continue
		}
		if ans := f.try(t, c, code); ans.status != http.StatusUnauthorized {
			t.Errorf("%s: a used code after a restart: %d %s, want 401", f.name, ans.status, ans.body)
		}
		stats.add(&stats.codeReplays)
	}
	f.used, f.usedIssued = nil, ""
	if f.pendingCode != "" {
		f.try(t, c, f.pendingCode) // accepted now if the kill beat the write; spent either way
		f.pendingCode = ""
	}
	if f.issued != "" {
		if ans := f.try(t, c, f.issued); ans.status != http.StatusOK {
			t.Errorf("%s: the acknowledged admin-issued code after a restart: %d %s, want it to sign in", f.name, ans.status, ans.body)
		} else {
			f.usedIssued = f.issued
		}
		f.issued = ""
	}
}

// verifyTOTP replays the last acknowledged step while the server would
// still take its code (the step and the next): it must be refused. When a
// sign-in was in flight at the kill, its later step settles the state
// instead, and the replay would prove nothing.
func (f *factorUser) verifyTOTP(t *testing.T, c *apiClient, stats *crashStats) {
	t.Helper()
	if f.pending != 0 {
		f.try(t, c, f.code(t, f.pending))
		f.last, f.pending = max(f.last, f.pending), 0
		return
	}
	if totpStep(time.Now()) > f.last+1 || f.replayed == f.last {
		return // out of the window a refusal proves nothing; in it, once is enough
	}
	f.replayed = f.last
	code := f.code(t, f.last)
	ans := f.try(t, c, code)
	if totpStep(time.Now()) > f.last+1 {
		return
	}
	if ans.status != http.StatusUnauthorized {
		t.Errorf("%s: replay of TOTP step %d after a restart: %d %s, want 401", f.name, f.last, ans.status, ans.body)
	}
	stats.add(&stats.totpReplays)
}

// try signs in with code on the restarted server; only a refusal (401) or
// a success are answers.
func (f *factorUser) try(t *testing.T, c *apiClient, code string) apiAnswer {
	t.Helper()
	ans, err := c.signIn(f.name, f.password, code)
	if err != nil || ans.status != http.StatusOK && ans.status != http.StatusUnauthorized {
		t.Fatalf("%s: sign-in after a restart: %v %d %s", f.name, err, ans.status, ans.body)
	}
	return ans
}
