package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedCoversNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	p, err := SelfSigned(dir, "mail.example.test", "192.0.2.7", "mail.example.test")
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	if p.CertFile != filepath.Join(dir, "cert.pem") || p.KeyFile != filepath.Join(dir, "key.pem") {
		t.Fatalf("pair = %+v, want cert.pem and key.pem in %s", p, dir)
	}
	pool, err := CertPool(p.CertFile)
	if err != nil {
		t.Fatalf("CertPool: %v", err)
	}
	addr := serve(t, newManager(t, Options{Pairs: []Pair{p}}))

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		host    string
		wantErr bool
	}{
		{"localhost", "localhost", false},
		{"IPv4 loopback", "127.0.0.1", false},
		{"IPv6 loopback", "::1", false},
		{"host name", hostname, false},
		{"extra DNS name", "mail.example.test", false},
		{"extra IP", "192.0.2.7", false},
		{"name not asked for", "other.example.test", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Verification is real: pinned root, name checked against the SANs.
			c, err := dial(t, addr, &tls.Config{ServerName: tt.host, RootCAs: pool})
			if tt.wantErr {
				var hostErr x509.HostnameError
				if !errors.As(err, &hostErr) {
					t.Fatalf("handshake for %q: err = %v, want a host name mismatch", tt.host, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pinned handshake for %q: %v", tt.host, err)
			}
			echo(t, c, "pinned")
		})
	}
}

func TestSelfSignedKeyAndValidity(t *testing.T) {
	p, err := SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf := loadLeaf(t, p)
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != selfSignedValidity+selfSignedBackdate {
		t.Fatalf("validity %s, want one year (plus the backdating)", got)
	}
	if leaf.IsCA {
		t.Fatal("self-signed server certificate is marked as a CA")
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("ExtKeyUsage = %v, want server auth only", leaf.ExtKeyUsage)
	}
}

func TestSelfSignedFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permission bits")
	}
	dir := t.TempDir()
	p, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, p.KeyFile, 0o600)
	assertMode(t, p.CertFile, 0o644)

	// A reused key that someone opened up is tightened again.
	if err := os.Chmod(p.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, p.KeyFile)
	if _, err := SelfSigned(dir); err != nil {
		t.Fatal(err)
	}
	assertMode(t, p.KeyFile, 0o600)
	if !bytes.Equal(before, readFile(t, p.KeyFile)) {
		t.Fatal("tightening the mode regenerated the key")
	}
}

func TestSelfSignedReuse(t *testing.T) {
	tests := []struct {
		name      string
		change    func(t *testing.T, p Pair) // applied between the two calls
		extra     []string                   // hosts for the second call
		wantReuse bool
	}{
		{"unchanged pair is reused", func(*testing.T, Pair) {}, nil, true},
		{"expiring within 30 days", func(t *testing.T, p Pair) {
			certPEM, keyPEM := genPEM(t, time.Now().Add(29*24*time.Hour), "localhost", "127.0.0.1", "::1", mustHostname(t))
			writeFile(t, p.KeyFile, keyPEM)
			writeFile(t, p.CertFile, certPEM)
		}, nil, false},
		{"new extra host", func(*testing.T, Pair) {}, []string{"new.example.test"}, false},
		{"broken key", func(t *testing.T, p Pair) { mustWrite(t, p.KeyFile, "junk") }, nil, false},
		{"missing certificate", func(t *testing.T, p Pair) { mustRemove(t, p.CertFile) }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := SelfSigned(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, first)
			before, _ := os.ReadFile(first.CertFile) // nil when the change removed it

			second, err := SelfSigned(dir, tt.extra...)
			if err != nil {
				t.Fatal(err)
			}
			if second != first {
				t.Fatalf("second pair %+v differs from %+v", second, first)
			}
			after := readFile(t, second.CertFile)
			if reused := bytes.Equal(before, after); reused != tt.wantReuse {
				t.Fatalf("reused = %v, want %v", reused, tt.wantReuse)
			}
			leaf := loadLeaf(t, second) // also proves cert and key match
			if time.Until(leaf.NotAfter) < selfSignedRenewal {
				t.Fatalf("result expires %s, within the renewal window", leaf.NotAfter)
			}
			for _, h := range tt.extra {
				if err := leaf.VerifyHostname(h); err != nil {
					t.Fatalf("regenerated certificate does not cover %s: %v", h, err)
				}
			}
		})
	}
}

func TestCertPoolErrors(t *testing.T) {
	dir := t.TempDir()
	p, err := SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, file, want string
	}{
		{"missing file", missing, missing},
		{"no certificate in file", p.KeyFile, p.KeyFile + ": no CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CertPool(tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func loadLeaf(t *testing.T, p Pair) *x509.Certificate {
	t.Helper()
	cert, err := loadPair(p)
	if err != nil {
		t.Fatalf("load %+v: %v", p, err)
	}
	return cert.Leaf
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Fatalf("%s mode %o, want %o", filepath.Base(path), got, want)
	}
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(h)
}
