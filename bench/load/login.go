package load

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// opTimeout bounds one login or fetch, so that a stuck target costs a
// counted error instead of a hung benchmark.
const opTimeout = 30 * time.Second

// Account is a user name and the secret the target expects for it.
type Account struct {
	User, Password string
}

// LoginConfig describes a login loop: Concurrency workers each connect,
// log in, log out and close, again and again.
type LoginConfig struct {
	Target      Target
	Accounts    []Account // used in turn
	Concurrency int
	// Warmup runs before the measured window and is not counted.
	Warmup   time.Duration
	Duration time.Duration
	// Grace is how long cycles still running after the window may take
	// before they are abandoned (default opTimeout): a target that stalls
	// must not hold the benchmark for its own timeouts.
	Grace time.Duration
}

// LoginResult counts the logins completed inside the measured window.
type LoginResult struct {
	Logins  int
	Errors  int
	Elapsed time.Duration
	// Latency runs from starting the connection to the OK of LOGIN: TCP and
	// TLS handshakes, greeting and login. Latencies are its samples.
	Latency   Summary
	Latencies []time.Duration
	FirstErr  error
	// Total counts every successful cycle, warm-up and the tail after the
	// window included, for costs measured over the whole run.
	Total int
}

// PerSecond is the login rate in the window.
func (r LoginResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Logins) / r.Elapsed.Seconds()
}

// Add merges another run's results into r, as if both had been one run.
func (r *LoginResult) Add(o LoginResult) {
	r.Logins += o.Logins
	r.Errors += o.Errors
	r.Total += o.Total
	r.Elapsed += o.Elapsed
	if r.FirstErr == nil {
		r.FirstErr = o.FirstErr
	}
	r.Latencies = append(r.Latencies, o.Latencies...)
	r.Latency = Summarize(r.Latencies)
}

// Logins runs the loop and reports the window. It fails when no login at
// all succeeded.
func Logins(ctx context.Context, cfg LoginConfig) (LoginResult, error) {
	if len(cfg.Accounts) == 0 {
		return LoginResult{}, fmt.Errorf("login loop: need accounts")
	}
	return loop(ctx, cfg.loop("login"), func(ctx context.Context, n int) (time.Duration, error) {
		return loginOnce(ctx, cfg.Target, cfg.Accounts[n%len(cfg.Accounts)], n)
	})
}

func (cfg LoginConfig) loop(what string) loopConfig {
	return loopConfig{what: what, addr: cfg.Target.Addr, concurrency: cfg.Concurrency, warmup: cfg.Warmup,
		duration: cfg.Duration, grace: cfg.Grace}
}

// loopConfig is the shape of a loop of cycles (a login, a message sent):
// concurrency workers each run cycle after cycle, and those that ran
// wholly inside [warmup, warmup+duration) count.
type loopConfig struct {
	what, addr       string // for errors: "login" on addr
	concurrency      int
	warmup, duration time.Duration
	grace            time.Duration
}

// loop runs once in cfg's workers and reports the window: the cycles'
// results in LoginResult's terms (Logins counts cycles). It fails when no
// cycle at all succeeded.
func loop(ctx context.Context, cfg loopConfig, once func(ctx context.Context, n int) (time.Duration, error)) (LoginResult, error) {
	if cfg.concurrency < 1 {
		return LoginResult{}, fmt.Errorf("%s loop: need a concurrency of at least 1", cfg.what)
	}
	start := time.Now()
	from, to := start.Add(cfg.warmup), start.Add(cfg.warmup+cfg.duration)
	grace := cfg.grace
	if grace <= 0 {
		grace = opTimeout
	}
	parent := ctx
	ctx, cancel := context.WithDeadline(ctx, to.Add(grace))
	defer cancel()
	workers := make([]loopWorker, cfg.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.id, w.step, w.once, w.from, w.to = i, cfg.concurrency, once, from, to
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	res := LoginResult{Elapsed: cfg.duration}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Errors += w.errors
		res.Total += w.total
		if res.FirstErr == nil {
			res.FirstErr = w.firstErr
		}
	}
	res.Logins = len(lat)
	res.Latency = Summarize(lat)
	res.Latencies = lat
	if err := parent.Err(); err != nil {
		return res, err
	}
	if res.Logins == 0 {
		if res.FirstErr == nil {
			return res, fmt.Errorf("%s loop on %s: nothing completed within %v", cfg.what, cfg.addr, cfg.duration)
		}
		return res, fmt.Errorf("%s loop on %s: nothing succeeded: %w", cfg.what, cfg.addr, res.FirstErr)
	}
	return res, nil
}

type loopWorker struct {
	id, step int
	once     func(ctx context.Context, n int) (time.Duration, error)
	from, to time.Time
	lat      []time.Duration
	total    int
	errors   int
	firstErr error
}

func (w *loopWorker) run(ctx context.Context) {
	for n := w.id; ctx.Err() == nil; n += w.step {
		start := time.Now()
		if !start.Before(w.to) {
			return
		}
		lat, err := w.once(ctx, n)
		if err == nil {
			w.total++
		}
		// Only cycles that ran wholly inside the window count, so that the
		// rate is not inflated by work begun during the warm-up.
		if start.Before(w.from) || time.Now().After(w.to) {
			continue
		}
		if err != nil {
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			continue
		}
		w.lat = append(w.lat, lat)
	}
}

// loginOnce runs one connect, login, logout, close cycle and returns the
// time to the login's OK.
func loginOnce(ctx context.Context, t Target, a Account, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, t, n)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if err := c.Login(a.User, a.Password); err != nil {
		return 0, fmt.Errorf("login as %s: %w", a.User, err)
	}
	lat := time.Since(start)
	if err := c.Logout(); err != nil {
		return 0, fmt.Errorf("logout: %w", err)
	}
	return lat, nil
}
