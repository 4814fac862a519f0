package load

import (
	"context"
	"fmt"
	"time"
)

// FetchConfig describes a fetch loop on one connection: the same message
// fetched again and again.
type FetchConfig struct {
	Target  Target
	Account Account
	Mailbox string
	Seq     int // message sequence number in Mailbox
	// Duration is the least time measured; MinFetches the least fetches.
	Duration   time.Duration
	MinFetches int
}

// FetchResult is what the measured fetches moved.
type FetchResult struct {
	Fetches int
	Bytes   int64 // message bytes, as the literals' sizes
	Elapsed time.Duration
}

// MBPerSecond is the message throughput in 10^6 bytes per second.
func (r FetchResult) MBPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Fetch logs in, examines the mailbox, fetches the message once to warm
// every cache on the way, then measures.
func Fetch(ctx context.Context, cfg FetchConfig) (FetchResult, error) {
	c, err := Dial(ctx, cfg.Target, 0)
	if err != nil {
		return FetchResult{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.Login(cfg.Account.User, cfg.Account.Password); err != nil {
		return FetchResult{}, fmt.Errorf("login as %s: %w", cfg.Account.User, err)
	}
	if err := c.Command("EXAMINE " + quote(cfg.Mailbox)); err != nil {
		return FetchResult{}, fmt.Errorf("examine %s: %w", cfg.Mailbox, err)
	}
	if _, err := fetchOne(c, cfg.Seq); err != nil {
		return FetchResult{}, err
	}
	var res FetchResult
	start := time.Now()
	for res.Fetches < cfg.MinFetches || time.Since(start) < cfg.Duration {
		n, err := fetchOne(c, cfg.Seq)
		if err != nil {
			return res, err
		}
		res.Fetches++
		res.Bytes += n
	}
	res.Elapsed = time.Since(start)
	c.Logout()
	return res, nil
}

func fetchOne(c *Conn, seq int) (int64, error) {
	c.SetDeadline(time.Now().Add(opTimeout))
	n, err := c.FetchBody(seq)
	if err != nil {
		return n, fmt.Errorf("fetch %d: %w", seq, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("fetch %d: %w: no message text", seq, ErrResponse)
	}
	return n, nil
}
