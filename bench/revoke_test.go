package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
)

// revocations is how many app passwords the revocation figure revokes at
// each session count, one live session each.
const revocations = 100

// listRuns is how many times each session listing is timed.
const listRuns = 20

// revokePlan sizes the revocation figure.
// The baseline holds the victims alone; the figure holds large sessions.
type revokePlan struct {
	name  string
	large int
	write bool
}

// TestRevocation measures how long an API revocation takes to close the
// matching session's socket while many idle IMAP sessions run through one
// postern, against the same with only the victims running, and how long
// listing the sessions takes. With POSTERN_BENCH=1 it writes its section
// of RESULTS.md; with quick it only prints.
func TestRevocation(t *testing.T) {
	var p revokePlan
	switch os.Getenv(benchEnv) {
	case "":
		t.Skipf("benchmarks are off; run with %s=1 (full, writes RESULTS.md) or %s=quick", benchEnv, benchEnv)
	case "quick":
		p = revokePlan{name: "quick", large: 1000}
	default:
		p = revokePlan{name: "full", large: revokeSessionsThatFit(t), write: true}
	}
	d := startDovecot(t)
	cert, clientTLS := benchCert(t)
	ps := setupPostern(t, t.TempDir(), d, cert)
	token := strings.TrimSpace(ps.cli(t, "token", "create", "bench"))
	proc := ps.start(t)
	api := &apiClient{base: "http://" + ps.adminAddr + "/api/v1", token: token, http: &http.Client{Timeout: time.Minute}}
	tg := load.Target{Addr: ps.tlsAddr, TLS: clientTLS, Sources: clientSources()}

	start := time.Now()
	small := measureRevocations(t, api, ps, tg, nil)
	background := load.NewHolder(load.IdleConfig{Target: tg, Accounts: ps.accounts, Mailbox: "INBOX", Parallel: 32})
	defer background.Close()
	if err := background.Grow(t.Context(), p.large-revocations); err != nil {
		t.Fatalf("idle sessions: %v\n%s", err, proc.tail())
	}
	large := measureRevocations(t, api, ps, tg, background)
	if alive, err := background.Alive(); err != nil || alive != p.large-revocations {
		t.Errorf("%d of %d background sessions alive after the revocations (%v)", alive, p.large-revocations, err)
	}
	report := renderRevocation(p, ps.source, small, large, time.Since(start))
	fmt.Println(report)
	if p.write {
		if err := revocationSection.write("RESULTS.md", report); err != nil {
			t.Fatal(err)
		}
	}
}

// revokeSessionsThatFit is the largest session count, in hundreds, that
// postern's two descriptors a session fit under the hard RLIMIT_NOFILE,
// which it inherits from this process (raised first when allowed).
func revokeSessionsThatFit(t *testing.T) int {
	sessionsThatFit(t) // raises the limits as far as they go
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// 200 descriptors for postern's listeners, store, log and runtime.
	return min(wantSessions, (int(lim.Max)-200)/2/100*100)
}

// revocationRun is one session count's figures.
type revocationRun struct {
	sessions     int          // live sessions through postern when revoking
	closed, call load.Summary // revoke call to socket closed; the call alone
	lists        listTimes
}

// victim is an app password with one live session.
type victim struct{ user, id string }

// measureRevocations opens one idle session for each of `revocations` new
// app passwords (next to the background sessions, if any), then revokes
// them one at a time through the API, timing each from the call to the
// end of its session's connection. The listings are timed before, with
// every session live.
func measureRevocations(t *testing.T, api *apiClient, ps *posternSetup, tg load.Target, background *load.Holder) revocationRun {
	t.Helper()
	victims := make([]victim, revocations)
	accounts := make([]load.Account, revocations)
	for i := range victims {
		user := userName(i % mailUsers)
		id, secret, err := api.createAppPassword(t.Context(), user, fmt.Sprintf("victim %d", i))
		if err != nil {
			t.Fatal(err)
		}
		victims[i] = victim{user: user, id: id}
		accounts[i] = load.Account{User: user, Password: secret}
	}
	// One at a time, so that the i-th connection is the i-th victim's.
	h := load.NewHolder(load.IdleConfig{Target: tg, Accounts: accounts, Mailbox: "INBOX", Parallel: 1})
	defer h.Close()
	if err := h.Grow(t.Context(), revocations); err != nil {
		t.Fatalf("victim sessions: %v", err)
	}
	run := revocationRun{sessions: revocations}
	if background != nil {
		run.sessions += background.Len()
	}
	if n := len(api.sessions(t)); n != run.sessions {
		t.Fatalf("postern lists %d sessions, want %d", n, run.sessions)
	}
	run.lists = timeListings(t, api, ps)
	conns := h.Conns()
	var closed, call []time.Duration
	for i, v := range victims {
		ended := make(chan time.Time, 1)
		go func() {
			end, err := conns[i].AwaitEnd(time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			ended <- end
		}()
		t0 := time.Now()
		if err := api.revoke(t.Context(), v.user, v.id); err != nil {
			t.Fatal(err)
		}
		call = append(call, time.Since(t0))
		closed = append(closed, (<-ended).Sub(t0))
	}
	run.closed, run.call = load.Summarize(closed), load.Summarize(call)
	t.Logf("%d sessions: revoke to close p50 %v p99 %v; the call alone p50 %v p99 %v", run.sessions,
		run.closed.P50, run.closed.P99, run.call.P50, run.call.P99)
	return run
}

// listTimes are the session listing's timings.
type listTimes struct {
	api, cli load.Summary // GET /api/v1/sessions; `postern sessions list --json`
	bytes    int          // size of the API's answer
}

// timeListings times listing every live session, through the API and
// with the command line as an operator runs it (process start included).
func timeListings(t *testing.T, api *apiClient, ps *posternSetup) listTimes {
	t.Helper()
	var apiT, cliT []time.Duration
	var lt listTimes
	for range listRuns {
		t0 := time.Now()
		body := api.get(t, "/sessions")
		apiT = append(apiT, time.Since(t0))
		lt.bytes = len(body)
		t0 = time.Now()
		cmd := exec.Command(ps.bin, "sessions", "list", "--json", "-c", ps.conf)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("postern sessions list: %v\n%s", err, stderr.String())
		}
		cliT = append(cliT, time.Since(t0))
	}
	lt.api, lt.cli = load.Summarize(apiT), load.Summarize(cliT)
	t.Logf("sessions list: API p50 %v, CLI p50 %v, %d bytes", lt.api.P50, lt.cli.P50, lt.bytes)
	return lt
}

// apiClient calls postern's admin API with a bearer token.
type apiClient struct {
	base, token string
	http        *http.Client
}

func (a *apiClient) do(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	return data, err
}

func (a *apiClient) get(t *testing.T, path string) []byte {
	t.Helper()
	data, err := a.do(t.Context(), "GET", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (a *apiClient) sessions(t *testing.T) []json.RawMessage {
	t.Helper()
	var out struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.Unmarshal(a.get(t, "/sessions"), &out); err != nil {
		t.Fatal(err)
	}
	return out.Sessions
}

func (a *apiClient) createAppPassword(ctx context.Context, user, name string) (id, secret string, err error) {
	data, err := a.do(ctx, "POST", "/users/"+user+"/app-passwords",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"scopes":["imap"]}`, name)))
	if err != nil {
		return "", "", err
	}
	var out struct {
		AppPassword struct {
			ID string `json:"id"`
		} `json:"app_password"`
		Secret string `json:"secret"`
	}
	err = json.Unmarshal(data, &out)
	return out.AppPassword.ID, strings.ReplaceAll(out.Secret, " ", ""), err
}

func (a *apiClient) revoke(ctx context.Context, user, id string) error {
	_, err := a.do(ctx, "DELETE", "/users/"+user+"/app-passwords/"+id, nil)
	return err
}

// revocationMethod explains the revocation figures.
const revocationMethod = `postern serve as in the figures above, in front of the same kind of
private Dovecot, with idle IMAP sessions (TLS, LOGIN, SELECT INBOX, IDLE)
from the load generator. Each of 100 app passwords has one live session; each
is revoked in turn by the API (` + "`DELETE /api/v1/users/{user}/app-passwords/{id}`" + `
with a bearer token, over the plain loopback admin listener), timed from
the call to the moment the client sees its connection end (BYE, then
close). The baseline is the same with only those 100 sessions running;
the figure adds background sessions of the 16 users' other app passwords.
The listing is ` + "`GET /api/v1/sessions`" + ` and ` + "`postern sessions list --json`" + `
(a new process reaching the server over its control socket), 20 runs each.`

// renderRevocation is the revocation section of RESULTS.md.
func renderRevocation(p revokePlan, source string, small, large revocationRun, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Ending sessions\n\n", revocationSection.begin)
	fmt.Fprintf(&b, "Run %s (%s plan, %v), generated by `%s=1 go test ./bench -run TestRevocation -count=1 -v -timeout 30m`; postern built from %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), p.name, took.Round(time.Second), benchEnv, source)
	fmt.Fprintf(&b, "%s\n\n", revocationMethod)
	if p.write && large.sessions < wantSessions {
		fmt.Fprintf(&b, "Sessions: %d, not %d: the hard RLIMIT_NOFILE here is %d and cannot be raised, and postern holds two descriptors a session (client and upstream) besides about 200 of its own.\n\n",
			large.sessions, wantSessions, hardNoFile())
	}
	fmt.Fprintf(&b, "| figure | %d sessions | %d sessions | ratio |\n| --- | ---: | ---: | ---: |\n", small.sessions, large.sessions)
	row := func(name string, a, z time.Duration) {
		fmt.Fprintf(&b, "| %s (ms) | %.2f | %.2f | %.2f |\n", name, ms(a), ms(z), ratio(z, a))
	}
	row("revoke call to socket closed, p50", small.closed.P50, large.closed.P50)
	row("revoke call to socket closed, p99", small.closed.P99, large.closed.P99)
	row("revoke call to socket closed, max", small.closed.Max, large.closed.Max)
	row("revoke call answered, p50", small.call.P50, large.call.P50)
	row("revoke call answered, p99", small.call.P99, large.call.P99)
	row("GET /api/v1/sessions, p50", small.lists.api.P50, large.lists.api.P50)
	row("GET /api/v1/sessions, p99", small.lists.api.P99, large.lists.api.P99)
	row("postern sessions list --json, p50", small.lists.cli.P50, large.lists.cli.P50)
	row("postern sessions list --json, p99", small.lists.cli.P99, large.lists.cli.P99)
	fmt.Fprintf(&b, "| listing size (KiB) | %.1f | %.1f | %.2f |\n", float64(small.lists.bytes)/1024,
		float64(large.lists.bytes)/1024, float64(large.lists.bytes)/float64(max(small.lists.bytes, 1)))
	fmt.Fprintf(&b, "\n%s\n", revocationSection.end)
	return b.String()
}

func hardNoFile() uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Max
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
