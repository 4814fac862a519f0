// Command loadgen runs the benchmarks' IMAP load by hand against any
// endpoint and prints the result as JSON:
//
//	loadgen login -addr 127.0.0.1:993 -tls -ca cert.pem -accounts FILE -c 16 -d 10s
//	loadgen fetch -addr 127.0.0.1:993 -tls -ca cert.pem -accounts FILE -mailbox big1 -d 5s
//	loadgen idle  -addr 127.0.0.1:993 -tls -ca cert.pem -accounts FILE -n 1000 -pid 4242
//
// FILE holds one "user password" pair a line. idle holds the sessions,
// prints the memory of process -pid and its children, and waits for ^C.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/postern-dev/postern/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// options are the flags every subcommand shares.
type options struct {
	target   load.Target
	accounts []load.Account
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: loadgen login|fetch|idle [flags]")
	}
	fs := flag.NewFlagSet("loadgen "+args[0], flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:993", "IMAP endpoint host:port")
	useTLS := fs.Bool("tls", false, "implicit TLS")
	ca := fs.String("ca", "", "PEM file of the certificate(s) to trust (default: system roots)")
	serverName := fs.String("servername", "", "name expected in the certificate (default: host of -addr)")
	accounts := fs.String("accounts", "", `file of "user password" lines`)
	sources := fs.Int("sources", 0, "spread connections over this many client addresses 127.0.1.1, 127.0.1.2, …")
	conc := fs.Int("c", 16, "login: concurrent connections")
	dur := fs.Duration("d", 10*time.Second, "login, fetch: measured time")
	warmup := fs.Duration("warmup", time.Second, "login: unmeasured time first")
	mailbox := fs.String("mailbox", "INBOX", "fetch, idle: mailbox")
	seq := fs.Int("seq", 1, "fetch: message sequence number")
	n := fs.Int("n", 1000, "idle: sessions to hold")
	pid := fs.Int("pid", 0, "idle: process whose memory to print")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	opts, err := parseOptions(*addr, *useTLS, *ca, *serverName, *accounts, *sources)
	if err != nil {
		return err
	}
	switch args[0] {
	case "login":
		res, err := load.Logins(ctx, load.LoginConfig{Target: opts.target, Accounts: opts.accounts,
			Concurrency: *conc, Warmup: *warmup, Duration: *dur})
		return report(map[string]any{"logins": res.Logins, "per_second": res.PerSecond(), "errors": res.Errors,
			"p50_ms": ms(res.Latency.P50), "p99_ms": ms(res.Latency.P99), "max_ms": ms(res.Latency.Max)}, err)
	case "fetch":
		res, err := load.Fetch(ctx, load.FetchConfig{Target: opts.target, Account: opts.accounts[0],
			Mailbox: *mailbox, Seq: *seq, Duration: *dur, MinFetches: 1})
		return report(map[string]any{"fetches": res.Fetches, "bytes": res.Bytes, "mb_per_second": res.MBPerSecond()}, err)
	case "idle":
		return idle(ctx, opts, *mailbox, *n, *pid)
	}
	return fmt.Errorf("unknown subcommand %q: want login, fetch or idle", args[0])
}

func parseOptions(addr string, useTLS bool, ca, serverName, accountFile string, sources int) (options, error) {
	o := options{target: load.Target{Addr: addr}}
	if useTLS {
		cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
		if serverName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return o, err
			}
			cfg.ServerName = host
		}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return o, err
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("%s holds no PEM certificate", ca)
			}
		}
		o.target.TLS = cfg
	}
	for i := range min(sources, 254) {
		o.target.Sources = append(o.target.Sources, net.IPv4(127, 0, 1, byte(i+1)))
	}
	var err error
	o.accounts, err = readAccounts(accountFile)
	return o, err
}

// readAccounts reads "user password" lines; blank lines and # comments
// are skipped.
func readAccounts(path string) ([]load.Account, error) {
	if path == "" {
		return nil, errors.New("-accounts is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []load.Account
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, pass, ok := strings.Cut(text, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"user password\"", path, line)
		}
		out = append(out, load.Account{User: user, Password: strings.TrimSpace(pass)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no accounts", path)
	}
	return out, nil
}

// idle opens the sessions, prints the process's memory and holds them
// until the context ends.
func idle(ctx context.Context, o options, mailbox string, n, pid int) error {
	h := load.NewHolder(load.IdleConfig{Target: o.target, Accounts: o.accounts, Mailbox: mailbox, Parallel: 32})
	defer h.Close()
	start := time.Now()
	if err := h.Grow(ctx, n); err != nil {
		return err
	}
	out := map[string]any{"sessions": h.Len(), "opened_s": time.Since(start).Seconds()}
	if pid != 0 {
		rss, err := load.TreeRSS(pid)
		if err != nil {
			return err
		}
		out["rss_bytes"] = rss
	}
	if err := report(out, nil); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func report(v map[string]any, err error) error {
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
