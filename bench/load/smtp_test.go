package load_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/internal/testpeer"
)

// TestSends: the submission loop sends messages to real Postfix over
// implicit TLS, each arriving from its account; a wrong password is an
// error of its own kind.
func TestSends(t *testing.T) {
	pf := testpeer.Postfix(t, testpeer.PostfixOptions{})
	body := "Subject: load\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 64)
	cfg := load.SendConfig{LoginConfig: load.LoginConfig{Target: load.Target{Addr: pf.TLSAddr, TLS: pf.ClientTLSConfig()},
		Accounts:    []load.Account{{User: "alice", Password: pf.Dovecot.Users["alice"]}, {User: "bob", Password: pf.Dovecot.Users["bob"]}},
		Concurrency: 2, Warmup: 50 * time.Millisecond, Duration: 500 * time.Millisecond},
		Message: []byte(body), Domain: "example.test", To: "carol@example.test"}
	res, err := load.Sends(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Logins == 0 || res.Latency.N != res.Logins {
		t.Fatalf("sent %d, %d errors (first %v), %d latencies", res.Logins, res.Errors, res.FirstErr, res.Latency.N)
	}
	for _, user := range []string{"alice", "bob"} {
		pf.WaitLog(t, "sasl_username="+user)
	}
	if got := pf.WaitDelivered(t, res.Total); !strings.Contains(got[0], "Subject: load") {
		t.Errorf("delivered:\n%s", got[0])
	}
	if _, err := load.SendOnce(t.Context(), cfg, load.Account{User: "alice", Password: "wrong"}, 0); !errors.Is(err, load.ErrReply) {
		t.Errorf("a wrong password: %v, want ErrReply", err)
	}
}
