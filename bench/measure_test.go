package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
)

// measure runs every figure, target after target within a figure so that
// the machine's state drifts alike for all of them. Problems that do not
// stop the run (errors counted in a loop, a target that could not hold
// every session) come back as notes.
func (e *env) measure(t *testing.T, p plan) (rows, cpu []Row, notes []string) {
	ctx := t.Context()
	var more, moreCPU []Row
	var cells []loginCell
	for _, secure := range []bool{true, false} {
		for _, c := range p.concurrency {
			cells = append(cells, loginCell{secure: secure, c: c})
		}
	}
	for _, lc := range cells {
		more, moreCPU, notes = e.logins(ctx, t, p, lc, notes)
		rows = append(rows, more...)
		cpu = append(cpu, moreCPU...)
	}
	for _, size := range []struct {
		name, box string
	}{{"1 MB", box1MB}, {"10 MB", box10MB}} {
		rows = append(rows, e.fetch(ctx, t, p, size.name, size.box))
	}
	// Last among the logins: a target that throttles one busy address may
	// stay slow for that address long after.
	more, moreCPU, notes = e.logins(ctx, t, p, loginCell{secure: true, c: oneSourceConcurrency, oneSource: true}, notes)
	rows = append(rows, more[0], more[2])
	cpu = append(cpu, moreCPU...)
	more, notes = e.memory(ctx, t, p, notes)
	return append(rows, more...), cpu, notes
}

func loginRowNames(secure bool, c int) (rate, p50, p99 string) {
	mode := "TLS"
	if !secure {
		mode = "plain"
	}
	return fmt.Sprintf("logins/s, %s, c=%d", mode, c),
		fmt.Sprintf("login p50, %s, c=%d", mode, c),
		fmt.Sprintf("login p99, %s, c=%d", mode, c)
}

// loginCell is one login figure being measured for every target.
type loginCell struct {
	secure bool
	c      int
	// oneSource sends every connection from 127.0.0.1 instead of
	// spreading them over many client addresses.
	oneSource bool
}

func (lc loginCell) names() (rate, p50, p99 string) {
	rate, p50, p99 = loginRowNames(lc.secure, lc.c)
	if lc.oneSource {
		rate, p50, p99 = rate+", one source address", p50+", one source address", p99+", one source address"
	}
	return rate, p50, p99
}

// logins measures one cell for every target, in rounds that take turns
// between the targets so that the machine's drift spreads over all.
func (e *env) logins(ctx context.Context, t *testing.T, p plan, lc loginCell, notes []string) ([]Row, []Row, []string) {
	rateName, p50Name, p99Name := lc.names()
	rate, p50, p99 := newRow(rateName, "1/s", Higher, 0), newRow(p50Name, "ms", Lower, 1), newRow(p99Name, "ms", Lower, 1)
	cpu := newCPURows(rateName)
	results := map[string]*load.LoginResult{}
	used := map[string]*cpuReading{}
	for range p.rounds {
		for _, tg := range e.targets {
			lt, ok := tg.loginTarget(lc)
			if !ok {
				for _, r := range append([]*Row{&rate, &p50, &p99}, rowPtrs(cpu)...) {
					r.Notes[tg.name] = tg.plainNote
				}
				continue
			}
			before := e.cpuNow(t, tg, lc.secure)
			res, err := load.Logins(ctx, load.LoginConfig{Target: lt, Accounts: tg.accounts, Concurrency: lc.c,
				Warmup: p.loginWarmup, Duration: p.loginDuration, Grace: p.loginGrace})
			if ctx.Err() != nil {
				t.Fatalf("%s %s: %v", tg.name, rateName, ctx.Err())
			}
			if err != nil && res.FirstErr == nil {
				res.FirstErr = err // nothing completed in the window
			}
			used[tg.name] = e.cpuNow(t, tg, lc.secure).since(before, used[tg.name])
			if results[tg.name] == nil {
				results[tg.name] = &load.LoginResult{}
			}
			results[tg.name].Add(res)
		}
	}
	for _, tg := range e.targets {
		res := results[tg.name]
		if res == nil {
			continue
		}
		t.Logf("%-8s %s: %.0f/s, p50 %v, p99 %v, %d errors", tg.name, rateName, res.PerSecond(),
			res.Latency.P50, res.Latency.P99, res.Errors)
		if res.Errors > 0 || res.Logins == 0 {
			notes = append(notes, fmt.Sprintf("%s, %s: %d failed or unfinished logins beside %d good ones; first: %v",
				tg.name, rateName, res.Errors, res.Logins, res.FirstErr))
		}
		rate.Values[tg.name] = res.PerSecond()
		if res.Logins > 0 {
			p50.Values[tg.name] = ms(res.Latency.P50)
			p99.Values[tg.name] = ms(res.Latency.P99)
		}
		used[tg.name].perLogin(res.Total, tg.name, cpu)
	}
	return []Row{rate, p50, p99}, cpu, notes
}

// cpuReading is the processor time used by the parts of a login: the
// proxy, Dovecot, and this process (the load generator, and nginx's
// auth_http responder).
type cpuReading struct {
	proxy, dovecot, client time.Duration
	hasProxy               bool
	// machine is all CPUs' busy time and wall the time it was read (or,
	// in a sum, the wall time elapsed), to tell what else ran meanwhile.
	machine time.Duration
	wall    time.Time
	elapsed time.Duration
}

func (e *env) cpuNow(t *testing.T, tg *target, secure bool) cpuReading {
	var r cpuReading
	var err error
	if tg.proxy != nil {
		r.hasProxy = true
		if r.proxy, err = load.TreeCPU(tg.proxy(secure)); err != nil {
			t.Fatalf("%s cpu: %v", tg.name, err)
		}
	}
	if e.dovecotPID != 0 {
		if r.dovecot, err = load.TreeCPU(e.dovecotPID); err != nil {
			t.Fatalf("dovecot cpu: %v", err)
		}
	}
	if r.client, err = load.CPU(os.Getpid()); err != nil {
		t.Fatalf("own cpu: %v", err)
	}
	if r.machine, err = load.MachineBusy(); err != nil {
		t.Fatalf("machine cpu: %v", err)
	}
	r.wall = time.Now()
	return r
}

// since is the time used from before to r, added to sum (nil: nothing yet).
func (r cpuReading) since(before cpuReading, sum *cpuReading) *cpuReading {
	if sum == nil {
		sum = &cpuReading{hasProxy: r.hasProxy}
	}
	sum.proxy += r.proxy - before.proxy
	sum.dovecot += r.dovecot - before.dovecot
	sum.client += r.client - before.client
	sum.machine += r.machine - before.machine
	sum.elapsed += r.wall.Sub(before.wall)
	return sum
}

// perLogin records the processor time per login into the rows made by
// newCPURows.
func (r *cpuReading) perLogin(logins int, target string, rows []Row) {
	if r == nil || logins == 0 {
		return
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(logins) }
	if r.hasProxy {
		rows[0].Values[target] = per(r.proxy)
	}
	if r.dovecot > 0 {
		rows[1].Values[target] = per(r.dovecot)
	}
	rows[2].Values[target] = per(r.client)
	if r.elapsed > 0 {
		other := r.machine - r.proxy - r.dovecot - r.client
		rows[3].Values[target] = max(0, other.Seconds()/r.elapsed.Seconds())
	}
}

// newCPURows are the processor-time rows for one login figure.
func newCPURows(figure string) []Row {
	return []Row{
		newRow("proxy CPU per login, "+figure, "ms", Lower, 2),
		newRow("Dovecot CPU per login, "+figure, "ms", Lower, 2),
		newRow("client CPU per login, "+figure, "ms", Lower, 2),
		// Other processes, kernel threads and interrupts: a busy neighbour
		// shows here.
		{Name: "other CPU load during " + figure, Unit: "cores", Better: Lower, Digits: 2, NoRatios: true,
			Values: map[string]float64{}, Notes: map[string]string{}},
	}
}

// fetch measures one message size over TLS for every target, in rounds
// that take turns: whether the proxy and Dovecot happen to run on separate
// cores moves a single run's throughput by a third.
func (e *env) fetch(ctx context.Context, t *testing.T, p plan, size, box string) Row {
	row := newRow("fetch "+size+", TLS", "MB/s", Higher, 0)
	sum := map[string]*load.FetchResult{}
	for range p.rounds {
		for _, tg := range e.targets {
			res, err := load.Fetch(ctx, load.FetchConfig{Target: tg.loginTargetTLS(), Account: tg.accounts[0], Mailbox: box, Seq: 1,
				Duration: p.fetchDuration, MinFetches: p.fetchMin})
			if err != nil {
				t.Fatalf("%s fetch %s: %v", tg.name, size, err)
			}
			if sum[tg.name] == nil {
				sum[tg.name] = &load.FetchResult{}
			}
			s := sum[tg.name]
			s.Fetches, s.Bytes, s.Elapsed = s.Fetches+res.Fetches, s.Bytes+res.Bytes, s.Elapsed+res.Elapsed
		}
	}
	for _, tg := range e.targets {
		res := sum[tg.name]
		t.Logf("%-8s fetch %s: %.0f MB/s (%d fetches)", tg.name, size, res.MBPerSecond(), res.Fetches)
		row.Values[tg.name] = res.MBPerSecond()
	}
	return row
}

func memRowName(n int) string  { return fmt.Sprintf("memory per idle session, %d sessions", n) }
func heldRowName(n int) string { return fmt.Sprintf("idle sessions held of %d", n) }

// memory opens idle sessions (TLS, login, SELECT, IDLE) on a fresh server
// process of each target and divides the growth of its memory by the
// sessions.
func (e *env) memory(ctx context.Context, t *testing.T, p plan, notes []string) ([]Row, []string) {
	m := memRows{held: newRow(heldRowName(p.top()), "sessions", Higher, 0)}
	for _, n := range p.idle {
		m.perSession = append(m.perSession, newRow(memRowName(n), "KiB", Lower, 1))
	}
	for _, tg := range e.targets {
		if err := e.memoryOf(ctx, t, p, tg, &m, &notes); err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", tg.name, err))
			for _, r := range m.perSession {
				if _, ok := r.Values[tg.name]; !ok {
					r.Notes[tg.name] = "failed"
				}
			}
		}
	}
	return append(m.perSession, m.held), notes
}

// memRows are the memory figures being filled in.
type memRows struct {
	perSession []Row // one per plan.idle count
	held       Row
}

func (e *env) memoryOf(ctx context.Context, t *testing.T, p plan, tg *target, m *memRows, notes *[]string) error {
	pid := tg.pid
	if tg.fresh != nil {
		var stop func()
		pid, stop = tg.fresh(t)
		defer stop()
	}
	if pid == 0 {
		return fmt.Errorf("no process to measure")
	}
	mem := func() (int64, error) {
		return settled(ctx, func() (int64, error) { return tg.memory(pid) }, p.settleMax)
	}
	base, err := mem()
	if err != nil {
		return err
	}
	var baseGo goMetrics
	if tg.metricsAddr != "" {
		if baseGo, err = readGoMetrics(ctx, tg.metricsAddr); err != nil {
			return err
		}
	}
	h := load.NewHolder(load.IdleConfig{Target: tg.loginTargetTLS(), Accounts: tg.accounts, Mailbox: "INBOX", Parallel: 32})
	defer h.Close()
	for i, n := range p.idle {
		start := time.Now()
		if err := h.Grow(ctx, n); err != nil {
			m.held.Values[tg.name] = float64(h.Len())
			return fmt.Errorf("stopped at %d idle sessions: %w", h.Len(), err)
		}
		v, err := mem()
		if err != nil {
			return err
		}
		m.perSession[i].Values[tg.name] = perSession(v, base, n)
		t.Logf("%-8s %d idle sessions (opened in %v): %.1f MiB over a base of %.1f MiB, %.1f KiB a session",
			tg.name, n, time.Since(start).Round(time.Millisecond), mib(v), mib(base), perSession(v, base, n))
	}
	alive, err := h.Alive()
	if err != nil {
		return err
	}
	m.held.Values[tg.name] = float64(alive)
	if tg.metricsAddr != "" && p.gcWait > 0 {
		more, err := e.runtimeFigures(ctx, p, tg, h, baseGo)
		*notes = append(*notes, more...)
		return err
	}
	return nil
}

// runtimeFigures explains postern's memory with the Go runtime's own
// figures: right after the sessions opened, the heap still holds what
// their logins left behind, and relay buffers used in the last second wait
// in a sync.Pool until two collections have passed, while an idle Go
// process collects only every two minutes. A short run of logins (as any
// live server sees) drives two collections; what the heap then holds is
// what the idle sessions themselves keep. Resident memory is not read
// again: freed heap and the audit pages the logins wrote would count.
func (e *env) runtimeFigures(ctx context.Context, p plan, tg *target, h *load.Holder, base goMetrics) ([]string, error) {
	n := p.top()
	before, err := readGoMetrics(ctx, tg.metricsAddr)
	if err != nil {
		return nil, err
	}
	logins := 0
	deadline := time.Now().Add(p.gcWait)
	for m := before; m.gcCount < before.gcCount+2; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postern collected %.0f times in %v of logins, want 2", m.gcCount-before.gcCount, p.gcWait)
		}
		res, err := load.Logins(ctx, load.LoginConfig{Target: tg.loginTargetTLS(), Accounts: tg.accounts, Concurrency: 16,
			Duration: time.Second})
		if err != nil {
			return nil, fmt.Errorf("logins beside the idle sessions: %w", err)
		}
		logins += res.Total
		if m, err = readGoMetrics(ctx, tg.metricsAddr); err != nil {
			return nil, err
		}
	}
	after, err := readGoMetrics(ctx, tg.metricsAddr)
	if err != nil {
		return nil, err
	}
	if alive, err := h.Alive(); err != nil || alive != n {
		return nil, fmt.Errorf("%d of %d idle sessions alive after the logins (%v)", alive, n, err)
	}
	return []string{
		fmt.Sprintf("%s with %d idle sessions, right after opening them: %s", tg.name, n, before.describe(base, n)),
		fmt.Sprintf("%s with %d idle sessions, after %d more logins and two collections: %s", tg.name, n, logins, after.describe(base, n)),
	}, nil
}

func perSession(v, base int64, n int) float64 { return float64(v-base) / float64(n) / 1024 }

// settled waits until read's value stops moving (two readings half a
// second apart within 1%), or maxWait has passed, and returns the last
// reading: right after a burst of logins freed memory is still being
// returned and processes are still exiting.
func settled(ctx context.Context, read func() (int64, error), maxWait time.Duration) (int64, error) {
	deadline := time.Now().Add(maxWait)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, err := read()
	if err != nil {
		return 0, err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		v, err := read()
		if err != nil {
			return 0, err
		}
		if math.Abs(float64(v-last)) <= 0.01*float64(last) {
			return v, nil
		}
		last = v
	}
	return last, nil
}

func rowPtrs(rows []Row) []*Row {
	out := make([]*Row, len(rows))
	for i := range rows {
		out[i] = &rows[i]
	}
	return out
}

func newRow(name, unit string, better Better, digits int) Row {
	return Row{Name: name, Unit: unit, Better: better, Digits: digits, Values: map[string]float64{}, Notes: map[string]string{}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

// goals are the targets, as ratios within the run.
func goals(p plan) []Goal {
	var g []Goal
	for _, c := range p.concurrency {
		rate, _, p99 := loginRowNames(true, c)
		g = append(g, Goal{Row: rate, Against: Nginx, Factor: 1.1}, Goal{Row: rate, Against: Relay, Factor: 0.9},
			Goal{Row: p99, Against: Nginx, Factor: 1})
	}
	for _, c := range p.concurrency {
		_, _, p99 := loginRowNames(false, c)
		g = append(g, Goal{Row: p99, Against: Nginx, Factor: 1})
	}
	g = append(g, Goal{Row: "fetch 1 MB, TLS", Against: Relay, Factor: 0.9},
		Goal{Row: "fetch 10 MB, TLS", Against: Relay, Factor: 0.9})
	for _, n := range p.idle {
		g = append(g, Goal{Row: memRowName(n), Against: Nginx, Factor: 1, Offset: 16})
	}
	return append(g, Goal{Row: heldRowName(p.top()), Offset: float64(p.top())})
}
