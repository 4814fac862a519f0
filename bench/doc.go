// Package bench measures postern against a direct connection to Dovecot,
// nginx's mail proxy and a bare TCP relay, in one run on one machine, and
// prints the figures with ratios. The driver is a test gated by an
// environment variable, so that an ordinary `go test ./...` skips it:
//
//	POSTERN_BENCH=1 go test ./bench -run TestReport -count=1 -v -timeout 30m     # full run (~8 min), writes bench/RESULTS.md
//	POSTERN_BENCH=quick go test ./bench -run TestReport -count=1 -v -timeout 10m # smoke run (~1 min), prints only
//	POSTERN_BENCH=1 go test ./bench -run TestRevocation -count=1 -v -timeout 30m # revocation among idle sessions, its own section
//
// It needs Dovecot and nginx with its mail module (scripts/install-peers
// installs them). The load generator is bench/load (and bench/cmd/loadgen
// to run it by hand); the bare relay is bench/relay (bench/cmd/relay).
//
// Set POSTERN_BENCH_REV to a git revision to build postern from it rather
// than from the working tree. The run needs a descriptor limit of about
// twice the idle sessions it holds; it raises its own when allowed and
// otherwise holds as many as fit.
package bench
