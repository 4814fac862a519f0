package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// defaultReloadInterval is how often Watch polls when Options.ReloadInterval is zero.
const defaultReloadInterval = time.Minute

// expiryWarning is how far ahead a loaded certificate's expiry is logged, so
// an operator whose renewal broke hears about it before clients do.
const expiryWarning = 14 * 24 * time.Hour

// Pair names one PEM certificate chain and its private key.
type Pair struct{ CertFile, KeyFile string }

// Options configures a Manager.
type Options struct {
	// Pairs are the certificates to serve. The first one is the default for
	// clients whose SNI matches no pair (or who send none, e.g. when dialing
	// an IP address).
	Pairs []Pair
	// ReloadInterval is how often Watch polls file mtimes and sizes; 0 means
	// defaultReloadInterval.
	ReloadInterval time.Duration
	// Logger receives reload and expiry messages; nil discards them.
	Logger *slog.Logger
}

// Manager serves certificates loaded from Pairs and swaps them atomically on
// reload. It is safe for concurrent use.
type Manager struct {
	pairs    []Pair
	interval time.Duration
	log      *slog.Logger

	// reloadMu serialises reload so that a slow, older read can never
	// replace the result of a newer one.
	reloadMu sync.Mutex
	current  atomic.Pointer[certSet]
}

// certSet is one immutable generation of loaded certificates. Handshakes
// read it through an atomic pointer, so a reload never blocks or disturbs
// them; established connections hold no reference to it at all.
type certSet struct {
	def      *tls.Certificate
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // keyed by the part after "*."
	stamps   []fileStamp                 // taken before reading, see Watch
}

// New loads every pair. The error names the file that could not be used.
func New(opts Options) (*Manager, error) {
	if len(opts.Pairs) == 0 {
		return nil, errors.New("certs: no certificate pairs configured")
	}
	for i, p := range opts.Pairs {
		if p.CertFile == "" || p.KeyFile == "" {
			return nil, fmt.Errorf("certs: pair %d: both a certificate file and a key file are required", i)
		}
	}
	if opts.ReloadInterval < 0 {
		return nil, fmt.Errorf("certs: negative reload interval %s", opts.ReloadInterval)
	}
	m := &Manager{
		pairs:    append([]Pair(nil), opts.Pairs...),
		interval: opts.ReloadInterval,
		log:      opts.Logger,
	}
	if m.interval == 0 {
		m.interval = defaultReloadInterval
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	set, err := m.load()
	if err != nil {
		return nil, err
	}
	m.current.Store(set)
	m.log.Info("certificates loaded", "pairs", len(m.pairs))
	return m, nil
}

// TLSConfig returns a new config (TLS 1.2 minimum) whose GetCertificate
// picks a pair by SNI: an exact name, then a wildcard, then the first pair.
// Each call returns a fresh value so a caller may set NextProtos or other
// fields without affecting other listeners.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.getCertificate,
	}
}

func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.current.Load().lookup(hello.ServerName), nil
}

// reload re-reads all pairs. On error the previously loaded pairs keep
// serving and the error names the offending file.
func (m *Manager) reload() error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	set, err := m.load()
	if err != nil {
		return err
	}
	m.current.Store(set)
	m.log.Info("certificates reloaded", "pairs", len(m.pairs))
	return nil
}

func (m *Manager) load() (*certSet, error) {
	set := &certSet{
		exact:    make(map[string]*tls.Certificate),
		wildcard: make(map[string]*tls.Certificate),
		// Stat before reading: a change racing the read then shows up as a
		// difference on the next poll instead of being missed.
		stamps: statPairs(m.pairs),
	}
	for _, p := range m.pairs {
		cert, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		m.warnExpiry(p, cert.Leaf)
		set.add(cert)
	}
	return set, nil
}

// loadPair reads one pair, checking the certificate on its own first so a
// failure can be blamed on the right file.
func loadPair(p Pair) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read key: %w", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("certs: certificate %s: %w", p.CertFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: key %s (for %s): %w", p.KeyFile, p.CertFile, err)
	}
	if cert.Leaf == nil {
		// X509KeyPair fills Leaf unless GODEBUG x509keypairleaf=0 says otherwise.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: certificate %s: %w", p.CertFile, err)
		}
	}
	return &cert, nil
}

// checkCertPEM reports whether certPEM holds at least one parseable
// certificate; tls.X509KeyPair's own errors do not say which input was bad.
func checkCertPEM(certPEM []byte) error {
	parsed, err := parsePEMCerts(certPEM)
	if err != nil {
		return err
	}
	if len(parsed) == 0 {
		return errors.New("no CERTIFICATE block found")
	}
	return nil
}

func (m *Manager) warnExpiry(p Pair, leaf *x509.Certificate) {
	left := time.Until(leaf.NotAfter)
	switch {
	case left <= 0:
		m.log.Warn("certificate has expired", "file", p.CertFile, "not_after", leaf.NotAfter)
	case left < expiryWarning:
		m.log.Warn("certificate expires soon", "file", p.CertFile, "not_after", leaf.NotAfter)
	}
}

// add indexes cert under its DNS names. The first pair to claim a name keeps
// it, matching the rule that the first pair is the default.
func (s *certSet) add(cert *tls.Certificate) {
	if s.def == nil {
		s.def = cert
	}
	for _, name := range cert.Leaf.DNSNames {
		name = normalizeName(name)
		index, key := s.exact, name
		if suffix, ok := strings.CutPrefix(name, "*."); ok {
			index, key = s.wildcard, suffix
		}
		if _, taken := index[key]; !taken {
			index[key] = cert
		}
	}
}

func (s *certSet) lookup(serverName string) *tls.Certificate {
	name := normalizeName(serverName)
	if name == "" {
		return s.def
	}
	if cert, ok := s.exact[name]; ok {
		return cert
	}
	// A wildcard covers exactly one label (RFC 6125 section 6.4.3).
	if _, parent, ok := strings.Cut(name, "."); ok {
		if cert, ok := s.wildcard[parent]; ok {
			return cert
		}
	}
	return s.def
}

// normalizeName makes SNI and certificate names comparable: DNS names are
// case-insensitive and a trailing dot names the same host.
func normalizeName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
