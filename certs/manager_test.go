package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSNISelectsCertificate(t *testing.T) {
	dir := t.TempDir()
	pa, a := writePair(t, dir, "a", "a.example.test")
	pb, b := writePair(t, dir, "b", "b.example.test", "bravo.example.test")
	pw, w := writePair(t, dir, "wild", "*.wild.example.test")
	// Listed after the wildcard on purpose: an exact name still wins.
	pe, e := writePair(t, dir, "exact", "exact.wild.example.test")
	m := newManager(t, Options{Pairs: []Pair{pa, pb, pw, pe}})
	addr := serve(t, m)

	roots := x509.NewCertPool()
	roots.AddCert(a)
	roots.AddCert(b)

	tests := []struct {
		name, sni string
		want      *x509.Certificate
		verify    bool // also verify the chain and name as a real client would
	}{
		{"first name", "a.example.test", a, true},
		{"second name", "b.example.test", b, true},
		{"second SAN of a pair", "bravo.example.test", b, true},
		{"case and trailing dot", "B.Example.Test.", b, false},
		{"wildcard", "x.wild.example.test", w, false},
		{"exact beats wildcard", "exact.wild.example.test", e, false},
		{"wildcard covers one label only", "deep.x.wild.example.test", a, false},
		{"unknown name gets the default", "unknown.example.test", a, false},
		{"no SNI gets the default", "", a, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := servedLeaf(t, addr, tt.sni); !got.Equal(tt.want) {
				t.Fatalf("SNI %q served %v, want %v", tt.sni, got.DNSNames, tt.want.DNSNames)
			}
			if !tt.verify {
				return
			}
			c, err := dial(t, addr, &tls.Config{ServerName: tt.sni, RootCAs: roots})
			if err != nil {
				t.Fatalf("verified handshake for %q: %v", tt.sni, err)
			}
			echo(t, c, "hello")
		})
	}
}

func TestTLSVersionFloor(t *testing.T) {
	dir := t.TempDir()
	p, _ := writePair(t, dir, "a", "a.example.test")
	m := newManager(t, Options{Pairs: []Pair{p}})
	if got := m.TLSConfig().MinVersion; got != tls.VersionTLS12 {
		t.Fatalf("MinVersion = %x, want TLS 1.2", got)
	}
	addr := serve(t, m)

	tests := []struct {
		name    string
		version uint16
		wantErr bool
	}{
		{"TLS 1.0 refused", tls.VersionTLS10, true},
		{"TLS 1.1 refused", tls.VersionTLS11, true},
		{"TLS 1.2 accepted", tls.VersionTLS12, false},
		{"TLS 1.3 accepted", tls.VersionTLS13, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(t, addr, &tls.Config{
				ServerName:         "a.example.test",
				InsecureSkipVerify: true, // the version, not the chain, is under test
				MinVersion:         tt.version,
				MaxVersion:         tt.version,
			})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handshake at %s succeeded, want refusal", tls.VersionName(tt.version))
				}
				// "remote error" shows the server refused, not our own client.
				if !strings.Contains(err.Error(), "remote error: tls: protocol version not supported") {
					t.Fatalf("handshake failed for another reason: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := c.ConnectionState().Version; got != tt.version {
				t.Fatalf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(tt.version))
			}
		})
	}
}

func TestTLSConfigIsFreshPerCall(t *testing.T) {
	p, _ := writePair(t, t.TempDir(), "a", "a.example.test")
	m := newManager(t, Options{Pairs: []Pair{p}})
	first := m.TLSConfig()
	first.NextProtos = []string{"h2"}
	if got := m.TLSConfig().NextProtos; got != nil {
		t.Fatalf("a caller's change leaked into the next config: NextProtos = %v", got)
	}
}

func TestReloadServesNewCertificate(t *testing.T) {
	dir := t.TempDir()
	p, old := writePair(t, dir, "a", "a.example.test")
	m := newManager(t, Options{Pairs: []Pair{p}})
	addr := serve(t, m)

	established, err := dial(t, addr, &tls.Config{ServerName: "a.example.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, established, "before")
	if got := established.ConnectionState().PeerCertificates[0]; !got.Equal(old) {
		t.Fatal("first connection did not get the original certificate")
	}

	renewed := rewritePair(t, p, "a.example.test", "renewed.example.test")
	if err := m.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(renewed) {
		t.Fatalf("after reload served %v (serial %v), want the renewed certificate", got.DNSNames, got.SerialNumber)
	}
	if got := servedLeaf(t, addr, "renewed.example.test"); !got.Equal(renewed) {
		t.Fatal("a name added by the renewal is not indexed")
	}
	echo(t, established, "after reload")
}

func TestReloadWithBrokenFileKeepsOldCertificate(t *testing.T) {
	const marker = "MARKER-FROM-BROKEN-FILE"
	tests := []struct {
		name  string
		bad   func(p Pair) string // breaks p and returns the path the error must name
		wants string              // further text the error must carry
	}{
		{"garbage certificate", func(p Pair) string {
			mustWrite(t, p.CertFile, "not a certificate "+marker)
			return p.CertFile
		}, "no CERTIFICATE"},
		{"corrupt certificate block", func(p Pair) string {
			mustWrite(t, p.CertFile, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			return p.CertFile
		}, "parse certificate"},
		{"garbage key", func(p Pair) string {
			mustWrite(t, p.KeyFile, "not a key "+marker)
			return p.KeyFile
		}, ""},
		{"key of another certificate", func(p Pair) string {
			_, otherKey := genPEM(t, time.Now().Add(time.Hour), "other.example.test")
			writeFile(t, p.KeyFile, otherKey)
			return p.KeyFile
		}, "does not match"},
		{"missing certificate", func(p Pair) string {
			mustRemove(t, p.CertFile)
			return p.CertFile
		}, ""},
		{"missing key", func(p Pair) string {
			mustRemove(t, p.KeyFile)
			return p.KeyFile
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, old := writePair(t, dir, "a", "a.example.test")
			m := newManager(t, Options{Pairs: []Pair{p}})
			addr := serve(t, m)

			path := tt.bad(p)
			err := m.reload()
			if err == nil {
				t.Fatal("reload succeeded on a broken file")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tt.wants) {
				t.Fatalf("error %q does not name %s (and %q)", msg, path, tt.wants)
			}
			if strings.Contains(msg, marker) {
				t.Fatalf("error echoes file content: %q", msg)
			}
			if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(old) {
				t.Fatal("a failed reload replaced the working certificate")
			}

			fixed := rewritePair(t, p, "a.example.test")
			if err := m.reload(); err != nil {
				t.Fatalf("reload after fixing: %v", err)
			}
			if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(fixed) {
				t.Fatal("the fixed certificate is not served")
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	good, _ := writePair(t, dir, "good", "good.example.test")
	garbageKey := filepath.Join(dir, "garbage.key")
	mustWrite(t, garbageKey, "junk")
	missing := filepath.Join(dir, "missing.crt")

	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no pairs", Options{}, "no certificate pairs"},
		{"empty key path", Options{Pairs: []Pair{{CertFile: good.CertFile}}}, "pair 0"},
		{"negative interval", Options{Pairs: []Pair{good}, ReloadInterval: -time.Second}, "negative"},
		{"missing certificate names the file", Options{Pairs: []Pair{good, {CertFile: missing, KeyFile: good.KeyFile}}}, missing},
		{"broken key names the file", Options{Pairs: []Pair{{CertFile: good.CertFile, KeyFile: garbageKey}}}, garbageKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New succeeded: %v", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestExpiryIsLogged(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		notAfter time.Time
		want     string
	}{
		{"valid for long", time.Now().Add(300 * 24 * time.Hour), ""},
		{"expires soon", time.Now().Add(2 * 24 * time.Hour), "certificate expires soon"},
		{"expired", time.Now().Add(-time.Minute), "certificate has expired"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM := genPEM(t, tt.notAfter, "a.example.test")
			p := Pair{CertFile: filepath.Join(dir, tt.name+".crt"), KeyFile: filepath.Join(dir, tt.name+".key")}
			writeFile(t, p.CertFile, certPEM)
			writeFile(t, p.KeyFile, keyPEM)
			var rec logRecorder
			newManager(t, Options{Pairs: []Pair{p}, Logger: rec.logger()})
			for _, msg := range []string{"certificate expires soon", "certificate has expired"} {
				if got, want := rec.count(msg), btoi(msg == tt.want); got != want {
					t.Fatalf("case %d: %q logged %d times, want %d (all: %v)", i, msg, got, want, rec.all())
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path, []byte(content))
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// Handshakes run while reloads swap the set; the race detector checks the
// hand-over, and every handshake must get one of the two valid certificates.
func TestReloadDuringHandshakes(t *testing.T) {
	dir := t.TempDir()
	p, first := writePair(t, dir, "a", "a.example.test")
	m := newManager(t, Options{Pairs: []Pair{p}})
	addr := serve(t, m)
	second := rewritePair(t, p, "a.example.test")

	results := make(chan *x509.Certificate)
	const handshakes = 20
	go func() {
		defer close(results)
		for range handshakes {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", addr, &tls.Config{ServerName: "a.example.test", InsecureSkipVerify: true})
			if err != nil {
				results <- nil
				continue
			}
			results <- c.ConnectionState().PeerCertificates[0]
			c.Close()
		}
	}()
	for range handshakes {
		if err := m.reload(); err != nil {
			t.Errorf("reload: %v", err)
		}
	}
	for got := range results {
		if got == nil || !(got.Equal(first) || got.Equal(second)) {
			t.Errorf("handshake during reload got %v", got)
		}
	}
}
