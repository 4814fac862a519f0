package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// crashKillsEnv sets how many times TestS1_CrashLoop kills the server:
// docs/security.md asks for 200 and more, which takes minutes; CI kills 20
// times. The full run:
//
//	POSTERN_CRASH_KILLS=200 go test -count=1 -timeout 60m -run TestS1_CrashLoop -v ./cmd/postern
const crashKillsEnv = "POSTERN_CRASH_KILLS"

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
// either is fine, and what the store says settles it (S1).
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
