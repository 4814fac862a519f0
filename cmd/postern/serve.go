package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/postern-dev/postern/config"
)

func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (c *cli) serve(ctx context.Context, _ *cli, args []string) error {
	fs := newFlags("serve")
	load := configFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(c.stderr, cfg.Log)
	g, err := startGateway(cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.shutdown(sctx)
}
