package bench

import (
	"os"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
)

func TestScratch(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	d := startDovecot(t)
	cert, clientTLS := benchCert(t)
	ps := setupPostern(t, t.TempDir(), d, cert)
	ps.bin = "/tmp/postern-prof"
	os.Setenv("HEAPPROF", "/tmp/postern-heap.prof")
	proc := ps.start(t)
	os.Unsetenv("HEAPPROF")
	tg := load.Target{Addr: ps.tlsAddr, TLS: clientTLS, Sources: clientSources()}
	h := load.NewHolder(load.IdleConfig{Target: tg, Accounts: ps.accounts, Mailbox: "INBOX", Parallel: 32})
	if err := h.Grow(t.Context(), 2000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	// Shutdown ends sessions; the heap profile is written when serve returns,
	// so take the goroutine count now and stop with the sessions still held.
	proc.cmd.Process.Signal(os.Interrupt)
	<-proc.exited
	h.Close()
}
