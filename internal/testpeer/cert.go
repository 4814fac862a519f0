package testpeer

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
	"testing"
	"time"
)

// selfSigned is a fresh certificate that is its own issuer, so a client can
// trust exactly this one server by putting CertPEM in its root pool.
type selfSigned struct {
	CertPEM []byte
	KeyPEM  []byte
}

// newSelfSigned makes a certificate valid for 127.0.0.1, ::1 and localhost.
func newSelfSigned(commonName string) (selfSigned, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return selfSigned{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return selfSigned{}, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"postern test peer"}},
		// Backdated so a peer whose clock is slightly behind still accepts it.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return selfSigned{}, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return selfSigned{}, fmt.Errorf("marshal key: %w", err)
	}
	return selfSigned{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// TLSConfig is a server configuration serving this certificate.
func (s selfSigned) TLSConfig() (*tls.Config, error) {
	pair, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// newPeerCert is a fresh certificate for a peer and a pool that trusts
// exactly it.
func newPeerCert(commonName string) (selfSigned, *x509.CertPool, error) {
	cert, err := newSelfSigned(commonName)
	if err != nil {
		return selfSigned{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert.CertPEM)
	return cert, pool, nil
}

// TLS returns a server config with a throwaway self-signed certificate for
// 127.0.0.1, ::1 and localhost, and a client config that trusts exactly
// that certificate and expects 127.0.0.1.
func TLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	server, client, _ = TLSFile(t)
	return server, client
}

// TLSFile is TLS plus the certificate as a PEM file, for clients that
// are told what to trust by a file (swaks, msmtp, curl, Python).
func TLSFile(t testing.TB) (server, client *tls.Config, certFile string) {
	t.Helper()
	cert, pool, err := newPeerCert("postern test")
	if err != nil {
		t.Fatal(err)
	}
	server, err = cert.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, cert.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return server, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, certFile
}
