// Command relay is the bare TCP relay of the benchmarks: it copies bytes
// between clients and one upstream and nothing else, optionally
// terminating TLS. It prints the address it listens on as its first line.
//
//	relay -listen 127.0.0.1:0 -upstream 127.0.0.1:143 [-cert c.pem -key k.pem]
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern-dev/postern/bench/relay"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream host:port (plain TCP)")
	cert := flag.String("cert", "", "PEM certificate: terminate TLS with it")
	key := flag.String("key", "", "PEM key of -cert")
	flag.Parse()
	if *upstream == "" {
		return errors.New("-upstream is required")
	}
	cfg := relay.Config{Upstream: *upstream, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return err
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Sessions in progress end with the process: a signal means the
	// benchmark is over.
	go relay.New(cfg).Serve(ln)
	<-ctx.Done()
	return nil
}
