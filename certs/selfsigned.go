package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewal: a pinned certificate is replaced this long before
	// it expires, so clients can be re-pinned before they start failing.
	selfSignedRenewal = 30 * 24 * time.Hour
	// selfSignedBackdate absorbs clock skew between server and client.
	selfSignedBackdate = time.Hour
)

// SelfSigned returns dir/cert.pem and dir/key.pem, generating an ECDSA P-256
// self-signed certificate valid for one year unless a usable one is already
// there. A present pair is reused when it loads, does not expire within 30
// days and covers every requested host: localhost, 127.0.0.1, ::1, the host
// name and extraHosts (DNS names, wildcards or IP addresses). The key file is
// mode 0600, the certificate 0644.
func SelfSigned(dir string, extraHosts ...string) (Pair, error) {
	p := Pair{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	dnsNames, ips := selfSignedHosts(extraHosts)
	now := time.Now()
	if reusable(p, dnsNames, ips, now) {
		return p, restrictKeyMode(p.KeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Pair{}, fmt.Errorf("certs: create %s: %w", dir, err)
	}
	certPEM, keyPEM, err := generate(dnsNames, ips, now.Add(-selfSignedBackdate), now.Add(selfSignedValidity))
	if err != nil {
		return Pair{}, err
	}
	// Key first: if the certificate write fails, the next call finds a
	// mismatched pair, which does not load and is therefore regenerated.
	if err := writeFileAtomic(p.KeyFile, keyPEM, 0o600); err != nil {
		return Pair{}, err
	}
	if err := writeFileAtomic(p.CertFile, certPEM, 0o644); err != nil {
		return Pair{}, err
	}
	return p, nil
}

// CertPool reads the PEM certificates in pemFile into a pool, for clients
// and tests that pin the self-signed certificate.
func CertPool(pemFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read pool: %w", err)
	}
	parsed, err := parsePEMCerts(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", pemFile, err)
	}
	if len(parsed) == 0 {
		return nil, fmt.Errorf("certs: %s: no CERTIFICATE block found", pemFile)
	}
	pool := x509.NewCertPool()
	for _, c := range parsed {
		pool.AddCert(c)
	}
	return pool, nil
}

// parsePEMCerts parses every CERTIFICATE block and ignores other blocks, so
// a combined cert+key file still yields its certificates.
func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

// selfSignedHosts returns the names the certificate must cover, normalised
// and without duplicates.
func selfSignedHosts(extra []string) (dnsNames []string, ips []net.IP) {
	hosts := append([]string{"localhost", "127.0.0.1", "::1"}, extra...)
	// A host name that cannot go into a certificate (non-ASCII) would make
	// generation fail for a name nobody asked for; leave it out instead.
	if h, err := os.Hostname(); err == nil && isASCII(h) {
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		h = normalizeName(strings.TrimSpace(h))
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if h != "" && !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return s != ""
}

func reusable(p Pair, dnsNames []string, ips []net.IP, now time.Time) bool {
	cert, err := loadPair(p)
	if err != nil {
		return false
	}
	leaf := cert.Leaf
	if now.Before(leaf.NotBefore) || !now.Add(selfSignedRenewal).Before(leaf.NotAfter) {
		return false
	}
	have := make([]string, len(leaf.DNSNames))
	for i, n := range leaf.DNSNames {
		have[i] = normalizeName(n)
	}
	for _, n := range dnsNames {
		if !slices.Contains(have, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// restrictKeyMode tightens a reused key file that someone made readable by
// others; the private key must stay 0600.
func restrictKeyMode(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if info.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("certs: restrict key file mode: %w", err)
	}
	return nil
}

func generate(dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "postern self-signed", Organization: []string{"postern"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Not a CA: Mozilla clients (Thunderbird) refuse a CA certificate
		// used as a server's own certificate even after an exception.
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, nil, fmt.Errorf("certs: generated pair does not load: %w", err)
	}
	return certPEM, keyPEM, nil
}

// writeFileAtomic replaces path with data via a temporary file in the same
// directory, so a reader (or Watch) never sees a half-written file and the
// mode is right from the first byte.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}
