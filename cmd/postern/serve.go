package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/safetext"
)

func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel(), ReplaceAttr: neutralise}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// neutralise writes the controls, bidirectional controls and line
// separators of a logged text or error as escapes: names and client names
// come from clients, and JSON keeps a U+202E as it is, which turns the
// rest of the line around in a terminal or a log viewer (W8).
func neutralise(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch v := a.Value.Any().(type) {
	case string:
		s = v
	case error:
		s = v.Error()
	default:
		return a
	}
	if !safetext.Valid(s) {
		a.Value = slog.StringValue(safetext.Show(s))
	}
	return a
}

func (c *cli) serve(ctx context.Context, _ *cli, args []string) error {
	cfg, err := configOnly("serve", args)
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
