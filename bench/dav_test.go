package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/internal/memdav"
	"github.com/postern-dev/postern/internal/testpeer"
)

// The DAV benchmark: a PROPFIND + REPORT + GET mix against two upstreams
// (real Radicale; the in-process go-webdav server, fast enough that the
// proxy's own cost shows), each reached directly, through postern, and
// through nginx as a plain reverse proxy (TLS, upstream keep-alive, no
// authentication: the floor any HTTP proxy pays).

const davUsers = 8

var davConcurrency = []int{1, 32}

var davPosternConfig = template.Must(template.New("postern.toml").Parse(`
data_dir = "{{.Dir}}/data"
key_file = "{{.Dir}}/postern.key"

[tls]
certificates = [{ cert_file = "{{.Cert}}", key_file = "{{.Key}}" }]

[imap]
listen_tls = ""
listen_starttls = ""

[pop3]
listen_tls = ""
listen_stls = ""

[dav]
listen = "{{.Addr}}"

[admin]
listen = ""

[upstream.dav]
url = "{{.Upstream}}"

[limits]
max_connections = 100000
max_connections_per_ip = 100000
`))

var davNginxConfig = template.Must(template.New("nginx.conf").Parse(`
daemon off;
worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  # postern keeps a client connection and an upstream one for as long as
  # they are used; nginx's default closes both after 1000 requests.
  keepalive_requests 1000000;
  upstream dav { server {{.Upstream}}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen {{.Addr}} ssl;
    ssl_certificate {{.Cert}};
    ssl_certificate_key {{.Key}};
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 0;
    location / {
      proxy_pass http://dav;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`))

// davUpstream is one DAV server and the paths the mix uses per user.
type davUpstream struct {
	name     string
	url      string // http://host:port/
	calendar func(user string) string
	event    func(user string) string
}

// davTarget is one column: where clients go and how they say who they are.
type davTarget struct {
	name   string
	base   string
	header bool // send X-Remote-User (direct and nginx; nothing checks a password there)
	pw     map[string]string
	pid    int // the proxy process (0: none), whose processor time is counted
}

func TestDAVReport(t *testing.T) {
	mode := os.Getenv(benchEnv)
	if mode == "" {
		t.Skipf("benchmarks are off; run with %s=1 (writes the DAV section of RESULTS.md) or %s=quick", benchEnv, benchEnv)
	}
	warm, dur, rounds := 300*time.Millisecond, 2*time.Second, 3
	load := []string{loadAverage()}
	if mode == "quick" {
		warm, dur, rounds = 100*time.Millisecond, 500*time.Millisecond, 1
	}
	cert, _ := benchCert(t)
	bin := t.TempDir()
	postern, source := buildPostern(t, bin)
	users := make([]string, davUsers)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d", i)
	}

	rad := testpeer.Radicale(t)
	fast := &http.Server{Handler: memdav.Handler(users, ""), ReadHeaderTimeout: 10 * time.Second}
	fastLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go fast.Serve(fastLn)
	t.Cleanup(func() { fast.Close() })
	ups := []davUpstream{
		{name: "Radicale", url: rad.URL,
			calendar: func(u string) string { return "/" + u + "/calendar/" },
			event:    func(u string) string { return "/" + u + "/calendar/welcome.ics" }},
		{name: "go-webdav (in-process)", url: "http://" + fastLn.Addr().String() + "/",
			calendar: func(u string) string { return memdav.CalDAVPrefix + u + "/calendars/default/" },
			event:    func(u string) string { return memdav.CalDAVPrefix + u + "/calendars/default/welcome.ics" }},
	}
	seedRadicale(t, rad, users)

	var sections []string
	var verdicts []string
	for _, up := range ups {
		post := startDAVPostern(t, postern, cert, up.url, users)
		ng, ngPID := startDAVNginx(t, cert, up.url)
		targets := []davTarget{
			{name: Direct, base: strings.TrimSuffix(up.url, "/"), header: true},
			{name: Postern, base: "https://" + post.addr, pw: post.pw, pid: post.pid},
			{name: Nginx, base: "https://" + ng, header: true, pid: ngPID},
		}
		res := map[string]map[int]davFigures{}
		for _, tg := range targets {
			res[tg.name] = map[int]davFigures{}
		}
		for _, c := range davConcurrency {
			// Rounds take turns so that a busy neighbour hits every target alike.
			for range rounds {
				for _, tg := range targets {
					f := runDAVMix(t, tg, up, users, c, warm, dur)
					res[tg.name][c] = res[tg.name][c].merge(f)
				}
			}
		}
		sections = append(sections, davTable(up.name, res))
		verdicts = append(verdicts, davVerdicts(up.name, res)...)
	}
	load = append(load, loadAverage())
	plan := "full plan"
	if mode == "quick" {
		plan = "quick plan"
	}
	report := davReport(source, plan, load, sections, verdicts)
	fmt.Println(report)
	if mode != "quick" {
		if err := davSection.write(filepath.Join(".", "RESULTS.md"), report); err != nil {
			t.Fatal(err)
		}
	}
}

// seedRadicale creates each user's calendar with one event.
func seedRadicale(t *testing.T, rad *testpeer.RadicalePeer, users []string) {
	t.Helper()
	ev := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern//bench//EN\r\nBEGIN:VEVENT\r\nUID:welcome@bench\r\n" +
		"DTSTAMP:20260101T090000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Welcome\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	for _, u := range users {
		for _, r := range []struct{ method, path, body string }{
			{"MKCALENDAR", "/" + u + "/calendar/", ""},
			{"PUT", "/" + u + "/calendar/welcome.ics", ev},
		} {
			req, _ := http.NewRequest(r.method, rad.URL+strings.TrimPrefix(r.path, "/"), strings.NewReader(r.body))
			req.Header.Set("X-Remote-User", u)
			req.Header.Set("Content-Type", "text/calendar")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode/100 != 2 {
				t.Fatalf("seed %s %s: %v %v", r.method, r.path, resp, err)
			}
			resp.Body.Close()
		}
	}
}

type davPostern struct {
	addr string
	pw   map[string]string
	pid  int
}

func startDAVPostern(t *testing.T, bin string, cert certFiles, upstream string, users []string) davPostern {
	t.Helper()
	dir := t.TempDir()
	p := &posternSetup{bin: bin, dir: dir, conf: filepath.Join(dir, "postern.toml")}
	addr := freeAddr(t)
	var conf bytes.Buffer
	if err := davPosternConfig.Execute(&conf, map[string]string{"Dir": dir, "Cert": cert.cert, "Key": cert.key, "Addr": addr, "Upstream": upstream}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.conf, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cli(t, "init")
	out := davPostern{addr: addr, pw: map[string]string{}}
	for _, u := range users {
		p.cli(t, "user", "add", u, "--no-password")
		out.pw[u] = strings.TrimSpace(p.cli(t, "app-password", "create", u, "--name", "bench", "--scope", "caldav,carddav"))
	}
	proc := startProcess(t, dir, "postern-dav", bin, "serve", "-c", p.conf)
	t.Cleanup(func() { proc.stop(t) })
	waitHTTPS(t, addr, proc.exited)
	out.pid = proc.pid()
	return out
}

func startDAVNginx(t *testing.T, cert certFiles, upstream string) (addr string, pid int) {
	t.Helper()
	bin := testpeer.RequirePeer(t, "nginx")
	dir := t.TempDir()
	addr = freeAddr(t)
	var conf bytes.Buffer
	up := strings.TrimSuffix(strings.TrimPrefix(upstream, "http://"), "/")
	if err := davNginxConfig.Execute(&conf, map[string]string{"Dir": dir, "Cert": cert.cert, "Key": cert.key, "Addr": addr, "Upstream": up}); err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, dir, "nginx-dav", bin, "-p", dir, "-c", cf, "-e", filepath.Join(dir, "error.log"))
	t.Cleanup(func() { proc.stop(t) })
	waitHTTPS(t, addr, proc.exited)
	return addr, proc.pid()
}

// waitHTTPS polls until addr completes a TLS handshake.
func waitHTTPS(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("server on %s exited", addr)
		default:
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no TLS on %s", addr)
}

const davReportBody = `<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">` +
	`<d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"/></c:comp-filter></c:filter></c:calendar-query>`

const davPropfindBody = `<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/><d:displayname/></d:prop></d:propfind>`

// davFigures are one target's latencies (sorted on use) over a run, and
// the processor time its proxy process used over the whole run, warm-up
// included, with the number of requests answered in that time.
type davFigures struct {
	lat      []time.Duration
	measured time.Duration
	errors   int
	cpu      time.Duration
	answered int
	firstErr error // of a run, for its log line
}

func (f davFigures) merge(g davFigures) davFigures {
	return davFigures{lat: append(f.lat, g.lat...), measured: f.measured + g.measured, errors: f.errors + g.errors,
		cpu: f.cpu + g.cpu, answered: f.answered + g.answered}
}

// cpuPerRequest is the proxy's processor time per request in µs: unlike
// the rates, it barely moves with what else runs on the machine.
func (f davFigures) cpuPerRequest() float64 {
	if f.answered == 0 {
		return 0
	}
	return float64(f.cpu.Microseconds()) / float64(f.answered)
}

func (f davFigures) rate() float64 { return float64(len(f.lat)) / f.measured.Seconds() }

func (f davFigures) pct(p float64) time.Duration {
	if len(f.lat) == 0 {
		return 0
	}
	s := slices.Clone(f.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// runDAVMix runs c clients, each on its own keep-alive connection, for warm
// + dur, each doing PROPFIND (Depth 1) of a calendar, a calendar-query
// REPORT and a GET of one event in turn; latencies after warm count.
func runDAVMix(t *testing.T, tg davTarget, up davUpstream, users []string, c int, warm, dur time.Duration) davFigures {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), warm+dur)
	defer cancel()
	start := time.Now()
	measureFrom := start.Add(warm)
	var mu sync.Mutex
	var out davFigures
	var wg sync.WaitGroup
	cpu := func() time.Duration {
		if tg.pid == 0 {
			return 0
		}
		d, err := load.TreeCPU(tg.pid)
		if err != nil {
			t.Fatalf("%s cpu: %v", tg.name, err)
		}
		return d
	}
	cpu0 := cpu()
	for i := range c {
		wg.Go(func() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
				DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			user := users[i%len(users)]
			var lat []time.Duration
			errs, answered := 0, 0
			for n := 0; ctx.Err() == nil; n++ {
				var req *http.Request
				switch n % 3 {
				case 0:
					req, _ = http.NewRequestWithContext(ctx, "PROPFIND", tg.base+up.calendar(user), strings.NewReader(davPropfindBody))
					req.Header.Set("Depth", "1")
				case 1:
					req, _ = http.NewRequestWithContext(ctx, "REPORT", tg.base+up.calendar(user), strings.NewReader(davReportBody))
					req.Header.Set("Depth", "1")
				default:
					req, _ = http.NewRequestWithContext(ctx, "GET", tg.base+up.event(user), nil)
				}
				req.Header.Set("Content-Type", "application/xml; charset=utf-8")
				if tg.header {
					req.Header.Set("X-Remote-User", user)
				} else {
					req.SetBasicAuth(user, tg.pw[user])
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("%s: %s", req.Method, resp.Status)
					}
				}
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					if errs == 0 {
						mu.Lock()
						if out.firstErr == nil {
							out.firstErr = err
						}
						mu.Unlock()
					}
					errs++
					continue
				}
				answered++
				if t0.After(measureFrom) {
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			out.lat = append(out.lat, lat...)
			out.errors += errs
			out.answered += answered
			mu.Unlock()
		})
	}
	wg.Wait()
	out.measured = time.Since(measureFrom)
	out.cpu = cpu() - cpu0
	if out.errors > 0 {
		t.Logf("%s c=%d: %d failed requests, the first: %v", tg.name, c, out.errors, out.firstErr)
	}
	return out
}

func davTable(upstream string, res map[string]map[int]davFigures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### In front of %s\n\n", upstream)
	b.WriteString("| figure | direct | postern | nginx | postern ÷ direct | postern ÷ nginx | nginx ÷ direct |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range davConcurrency {
		d, p, n := res[Direct][c], res[Postern][c], res[Nginx][c]
		row := func(name string, dv, pv, nv float64, digits int) {
			f := fmt.Sprintf("%%.%df", digits)
			fmt.Fprintf(&b, "| %s, c=%d | "+f+" | "+f+" | "+f+" | %.2f | %.2f | %.2f |\n", name, c, dv, pv, nv, pv/dv, pv/nv, nv/dv)
		}
		row("requests/s", d.rate(), p.rate(), n.rate(), 0)
		row("p50 (ms)", ms(d.pct(0.5)), ms(p.pct(0.5)), ms(n.pct(0.5)), 2)
		row("p99 (ms)", ms(d.pct(0.99)), ms(p.pct(0.99)), ms(n.pct(0.99)), 2)
		fmt.Fprintf(&b, "| added p50 over direct, c=%d (ms) | – | %.2f | %.2f | | | |\n", c, ms(p.pct(0.5)-d.pct(0.5)), ms(n.pct(0.5)-d.pct(0.5)))
		fmt.Fprintf(&b, "| proxy CPU per request, c=%d (µs) | – | %.0f | %.0f | | %.2f | |\n", c, p.cpuPerRequest(), n.cpuPerRequest(), p.cpuPerRequest()/n.cpuPerRequest())
	}
	return b.String()
}

// davVerdicts judges the targets: on Radicale ≥ 0.9 × direct
// throughput; on the fast upstream ≥ 1.0 × nginx's throughput and at most
// 0.2 ms added p50 (over direct).
func davVerdicts(upstream string, res map[string]map[int]davFigures) []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	for _, c := range davConcurrency {
		d, p, n := res[Direct][c], res[Postern][c], res[Nginx][c]
		if strings.HasPrefix(upstream, "Radicale") {
			r := p.rate() / d.rate()
			out = append(out, fmt.Sprintf("%s, c=%d: requests/s ≥ 0.9 × direct — %s (%.0f against %.0f, ratio %.2f)", upstream, c, verdict(r >= 0.9), p.rate(), d.rate(), r))
			continue
		}
		r := p.rate() / n.rate()
		out = append(out, fmt.Sprintf("%s, c=%d: requests/s ≥ 1.0 × nginx — %s (%.0f against %.0f, ratio %.2f)", upstream, c, verdict(r >= 1.0), p.rate(), n.rate(), r))
		added := ms(p.pct(0.5) - d.pct(0.5))
		out = append(out, fmt.Sprintf("%s, c=%d: added p50 ≤ 0.2 ms — %s (%.2f ms: postern %.2f, direct %.2f)", upstream, c, verdict(added <= 0.2), added, ms(p.pct(0.5)), ms(d.pct(0.5))))
	}
	return out
}

func davReport(source, plan string, load, tables, verdicts []string) string {
	var b strings.Builder
	b.WriteString(davSection.begin + "\n")
	fmt.Fprintf(&b, "## CalDAV/CardDAV\n\nRun %s (%s), generated by `%s=1 go test ./bench -run TestDAVReport -count=1 -v -timeout 30m`; postern built from %s. "+
		"Load average of the machine (1, 5, 15 min) at the start: %s; at the end: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), plan, benchEnv, source, load[0], load[1])
	b.WriteString(davMethod + "\n\n")
	for _, tb := range tables {
		b.WriteString(tb + "\n")
	}
	b.WriteString("### Targets\n\n")
	for _, v := range verdicts {
		b.WriteString("- " + v + "\n")
	}
	b.WriteString(davSection.end + "\n")
	return b.String()
}

const davMethod = `Each client keeps one keep-alive connection and sends, in turn, a PROPFIND
(Depth 1) of its calendar, a calendar-query REPORT of it and a GET of its one
event, as a syncing calendar app does; eight users, one calendar with one
event each. Three rounds per figure, taking turns between targets, of 0.3 s
warm-up and 2 s measured. **direct**: plain HTTP to the upstream, naming the
user in X-Remote-User. **postern**: ` + "`postern serve`" + ` over TLS with an app
password in Basic on every request, header auth upstream, default log
level. **nginx**: nginx as a plain TLS reverse proxy with upstream keep-alive
and no authentication, the floor any HTTP proxy pays. Both proxies may use
both cores: postern with Go's default GOMAXPROCS (2), nginx with one worker
per core (worker_processes auto: 2); the clients and the in-process upstream
run in the benchmark process on the same cores. "proxy CPU per request" is
the proxy's processor time (user + system, its processes together, from
/proc) over the whole run divided by the requests it answered: unlike the
rates it barely depends on what else runs on the machine. The upstreams are
Radicale 3 (Debian) with http_x_remote_user, and go-webdav's CalDAV handler
over an in-memory backend (internal/memdav) in the benchmark process.`

// loadAverage is /proc/loadavg's first three fields: other work on the
// machine shows there.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}
