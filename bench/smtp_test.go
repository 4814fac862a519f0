package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
)

var smtpSection = section{"<!-- smtp:begin -->", "<!-- smtp:end -->"}

// smtpPlan is how much of each SMTP figure a run measures.
type smtpPlan struct {
	name             string
	warmup, duration time.Duration
	rounds           int // per target and figure, taking turns
	bigSends         int // 20 MB messages per target and round
}

var smtpConcurrency = []int{1, 16}

// Message sizes: a typical message with a small attachment, and a large
// attachment.
const (
	smallMessage = 10 << 10
	largeMessage = 20 << 20
)

// TestSMTPReport measures submission through every target in one run and
// writes the SMTP section of RESULTS.md (a quick run only prints).
func TestSMTPReport(t *testing.T) {
	p := smtpPlan{name: "full plan", warmup: 500 * time.Millisecond, duration: 2 * time.Second, rounds: 3, bigSends: 3}
	switch os.Getenv(benchEnv) {
	case "":
		t.Skipf("benchmarks are off; run with %s=1 (writes the SMTP section of RESULTS.md) or %s=quick", benchEnv, benchEnv)
	case "quick":
		p = smtpPlan{name: "quick plan", warmup: 200 * time.Millisecond, duration: 500 * time.Millisecond, rounds: 1, bigSends: 1}
	}
	loadAvg := []string{loadAverage()}
	cert, clientTLS := benchCert(t)
	bin := t.TempDir()
	postern, source := buildPostern(t, bin)
	peers := startSMTPPeers(t)
	targets := smtpTargets(t, bin, postern, cert, peers)
	for _, tg := range targets {
		if tg.name == Direct {
			tg.target.TLS = pinX25519(peers.postfix.ClientTLSConfig())
		} else {
			tg.target.TLS = clientTLS
		}
		tg.target.Sources = clientSources()
	}
	start := time.Now()
	rows := measureSMTP(t, p, peers, targets)
	loadAvg = append(loadAvg, loadAverage())
	report := smtpReport(source, p, loadAvg, rows, time.Since(start))
	fmt.Println(report)
	if p.name == "full plan" {
		if err := smtpSection.write(filepath.Join(".", "RESULTS.md"), report); err != nil {
			t.Fatal(err)
		}
	}
}

// smtpTargets starts the proxies in front of the peers.
func smtpTargets(t *testing.T, bin, postern string, cert certFiles, peers smtpPeers) []*smtpTarget {
	t.Helper()
	direct := &smtpTarget{name: Direct, target: load.Target{Addr: peers.postfix.TLSAddr}, accounts: peers.dovecotAccounts()}
	post := startSMTPPostern(t, postern, cert, peers.postfix.Addr)
	ng := startSMTPNginx(t, cert, peers)
	relayBin := buildBinary(t, "", bin, "github.com/postern-dev/postern/bench/cmd/relay")
	rl := startRelay(t, relayBin, peers.postfix.Addr, cert)
	relay := &smtpTarget{name: Relay, target: load.Target{Addr: rl.addr}, accounts: peers.dovecotAccounts(), pid: rl.proc.pid()}
	return []*smtpTarget{direct, &post, &ng, relay}
}

// smtpCost is the processor time spent over some sends, and how many
// messages the servers accepted meanwhile (warm-up included).
type smtpCost struct {
	proxy, servers time.Duration
	messages       int
}

func (c smtpCost) add(o smtpCost) smtpCost {
	return smtpCost{c.proxy + o.proxy, c.servers + o.servers, c.messages + o.messages}
}

// cpu reads the processor time of the target's proxy and of the mail
// servers (Postfix and Dovecot, all their processes).
func (p smtpPeers) cpu(t *testing.T, tg *smtpTarget) smtpCost {
	t.Helper()
	var c smtpCost
	read := func(pid int) time.Duration {
		if pid == 0 {
			return 0
		}
		d, err := load.TreeCPU(pid)
		if err != nil {
			t.Fatalf("cpu of %d: %v", pid, err)
		}
		return d
	}
	c.proxy = read(tg.pid)
	c.servers = read(p.postfixPID) + read(p.dovecotPID)
	return c
}

func (c smtpCost) since(before smtpCost, messages int) smtpCost {
	return smtpCost{c.proxy - before.proxy, c.servers - before.servers, messages}
}

// measureSMTP runs every figure, taking turns between the targets within
// each round so that the machine's drift spreads over all of them.
func measureSMTP(t *testing.T, p smtpPlan, peers smtpPeers, targets []*smtpTarget) []Row {
	var rows []Row
	small := []byte(bigMessage(smallMessage))
	for _, c := range smtpConcurrency {
		rate := newRow(fmt.Sprintf("messages/s, 10 KB, c=%d", c), "1/s", Higher, 0)
		p50 := newRow(fmt.Sprintf("message p50, 10 KB, c=%d", c), "ms", Lower, 1)
		p99 := newRow(fmt.Sprintf("message p99, 10 KB, c=%d", c), "ms", Lower, 1)
		proxyCPU := newRow(fmt.Sprintf("proxy CPU per message, c=%d", c), "ms", Lower, 2)
		serverCPU := newRow(fmt.Sprintf("Postfix + Dovecot CPU per message, c=%d", c), "ms", Lower, 2)
		results := map[string]*load.LoginResult{}
		costs := map[string]smtpCost{}
		for range p.rounds {
			for _, tg := range targets {
				before := peers.cpu(t, tg)
				res, err := load.Sends(t.Context(), sendConfig(tg, c, p, small))
				if err != nil {
					t.Fatalf("%s c=%d: %v", tg.name, c, err)
				}
				costs[tg.name] = costs[tg.name].add(peers.cpu(t, tg).since(before, res.Total))
				if results[tg.name] == nil {
					results[tg.name] = &load.LoginResult{}
				}
				results[tg.name].Add(res)
			}
		}
		for _, tg := range targets {
			res, cost := results[tg.name], costs[tg.name]
			t.Logf("%-8s c=%d: %.0f messages/s, p50 %v, p99 %v, %d errors (first %v)", tg.name, c, res.PerSecond(),
				res.Latency.P50, res.Latency.P99, res.Errors, res.FirstErr)
			rate.Values[tg.name], p50.Values[tg.name], p99.Values[tg.name] = res.PerSecond(), ms(res.Latency.P50), ms(res.Latency.P99)
			if tg.pid != 0 {
				proxyCPU.Values[tg.name] = ms(cost.proxy) / float64(cost.messages)
			}
			serverCPU.Values[tg.name] = ms(cost.servers) / float64(cost.messages)
		}
		rows = append(rows, rate, p50, p99, proxyCPU, serverCPU)
	}
	return append(rows, measureLarge(t, p, targets))
}

func sendConfig(tg *smtpTarget, c int, p smtpPlan, msg []byte) load.SendConfig {
	return load.SendConfig{LoginConfig: load.LoginConfig{Target: tg.target, Accounts: tg.accounts, Concurrency: c,
		Warmup: p.warmup, Duration: p.duration, Grace: 30 * time.Second}, Message: msg, Domain: "example.org", To: "sink@example.org"}
}

// measureLarge sends the 20 MB message one at a time and gives the
// throughput of whole sessions: connect, TLS, EHLO, AUTH, the message.
func measureLarge(t *testing.T, p smtpPlan, targets []*smtpTarget) Row {
	row := newRow("throughput, 20 MB message, c=1", "MB/s", Higher, 0)
	large := []byte(bigMessage(largeMessage))
	took := map[string]time.Duration{}
	for range p.rounds {
		for _, tg := range targets {
			cfg := sendConfig(tg, 1, p, large)
			for i := range p.bigSends {
				d, err := load.SendOnce(t.Context(), cfg, tg.accounts[i%len(tg.accounts)], i)
				if err != nil {
					t.Fatalf("%s 20 MB: %v", tg.name, err)
				}
				took[tg.name] += d
			}
		}
	}
	for _, tg := range targets {
		sent := float64(p.rounds*p.bigSends) * float64(len(large)) / 1e6
		row.Values[tg.name] = sent / took[tg.name].Seconds()
		t.Logf("%-8s 20 MB: %.0f MB/s", tg.name, row.Values[tg.name])
	}
	return row
}

// smtpGoals are the targets for submission.
func smtpGoals() []Goal {
	var out []Goal
	for _, c := range smtpConcurrency {
		row := fmt.Sprintf("messages/s, 10 KB, c=%d", c)
		out = append(out, Goal{Row: row, Against: Relay, Factor: 0.9}, Goal{Row: row, Against: Nginx, Factor: 1.1})
	}
	return append(out, Goal{Row: "throughput, 20 MB message, c=1", Against: Relay, Factor: 0.9})
}

func smtpReport(source string, p smtpPlan, loadAvg []string, rows []Row, took time.Duration) string {
	var b strings.Builder
	b.WriteString(smtpSection.begin + "\n## SMTP submission\n\n")
	fmt.Fprintf(&b, "Run %s (%s, %s), generated by `%s=1 go test ./bench -run TestSMTPReport -count=1 -v -timeout 30m`; "+
		"postern built from %s. Load average of the machine (1, 5, 15 min) at the start: %s; at the end: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), p.name, took.Round(time.Second), benchEnv, source, loadAvg[0], loadAvg[1])
	b.WriteString(smtpMethod)
	b.WriteString("\n### Figures\n\n")
	b.WriteString(Markdown(rows))
	b.WriteString("\n### Targets\n\n")
	b.WriteString(VerdictList(Judge(rows, smtpGoals())))
	b.WriteString(smtpSection.end + "\n")
	return b.String()
}

const smtpMethod = `All four targets run on loopback on this machine, at the same time, in
front of one private Postfix 3.7 (Debian) whose SASL is a private Dovecot;
Postfix queues each message (its queue file written and synced) and then
discards it. Sixteen users. Every client does a full TLS 1.3 handshake with
X25519 against an ECDSA P-256 certificate, from 64 client addresses
(127.0.1.1–64), and a session is connect, TLS, greeting, EHLO, AUTH PLAIN,
MAIL, RCPT, DATA, the message, QUIT, one command at a time; its latency runs
up to the 250 that accepts the message. Message figures are three rounds per
target, taking turns, of 0.5 s warm-up and 2 s measured; the 20 MB figure is
three sessions per target and round, one at a time, over whole sessions.

- **direct**: Postfix's own smtpd with TLS from the first byte
  (smtpd_tls_wrappermode); AUTH checked by Dovecot over its auth socket.
- **postern**: ` + "`postern serve`" + ` with an SMTP app password per user, XCLIENT to
  Postfix over plain loopback, default log level.
- **nginx**: nginx's mail proxy (libnginx-mod-mail, worker_processes auto,
  ` + "`smtp_auth plain login; xclient on;`" + `) with the Go auth_http responder of the
  IMAP figures, which checks the secret and names Postfix; nginx terminates
  TLS and tells Postfix the user with XCLIENT.
- **relay**: the bare Go relay (bench/relay) terminating TLS; the client's
  AUTH goes through it to Postfix and Dovecot, as for direct.

"proxy CPU per message" is the proxy's processor time (its processes
together, from /proc) over every message of the figure's runs, warm-up
included; "Postfix + Dovecot CPU per message" the same for all processes of
both, which shows what each way of naming the user costs the mail servers.
`
