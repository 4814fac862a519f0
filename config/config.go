// Package config owns postern's configuration file: the TOML schema, every
// default (in Default, and nowhere else), strict decoding and validation.
//
// Errors point at the input: each problem is reported as
// FILE:LINE:COL: KEY: message, so an operator can fix a file without guessing.
// The package is a leaf: it imports only the standard library and go-toml,
// and it never opens listeners, dials or reads secrets; it only checks that
// the files the configuration names can be read.
package config

import (
	"log/slog"
	"net/netip"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	DataDir string `toml:"data_dir"`
	// KeyFile holds the pepper and sealing keys; it lives outside DataDir so
	// that a backup of the data directory never carries it.
	KeyFile  string   `toml:"key_file"`
	Log      Log      `toml:"log"`
	TLS      TLS      `toml:"tls"`
	IMAP     IMAP     `toml:"imap"`
	POP3     POP3     `toml:"pop3"`
	SMTP     SMTP     `toml:"smtp"`
	DAV      DAV      `toml:"dav"`
	Admin    Admin    `toml:"admin"`
	Upstream Upstream `toml:"upstream"`
	Policy   Policy   `toml:"policy"`
	Limits   Limits   `toml:"limits"`
	Backup   Backup   `toml:"backup"`
	Audit    Audit    `toml:"audit"`

	// src remembers where each key was in the file, so that Validate can
	// point at it; nil for a Config built in code.
	src *source
}

// Log configures log/slog output.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // text or json
}

// SlogLevel is Level as a slog.Level; an unknown level (which Validate
// refuses) reads as info.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// TLS configures the certificates every TLS listener serves.
type TLS struct {
	// Certificates are chosen by the name the client asks for (SNI).
	Certificates []Certificate `toml:"certificates"`
	// SelfSigned generates a certificate into DataDir when Certificates is
	// empty; for demos and first tries only.
	SelfSigned     bool     `toml:"self_signed"`
	ReloadInterval Duration `toml:"reload_interval"`
}

// Certificate is one PEM certificate chain and its private key.
type Certificate struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// IMAP configures the client-facing IMAP listeners; an empty address
// disables that listener.
type IMAP struct {
	ListenTLS      string   `toml:"listen_tls"`
	ListenSTARTTLS string   `toml:"listen_starttls"`
	IdleTimeout    Duration `toml:"idle_timeout"`
}

// POP3 configures the client-facing POP3 listeners; an empty address
// disables that listener.
type POP3 struct {
	ListenTLS   string   `toml:"listen_tls"`
	ListenSTLS  string   `toml:"listen_stls"`
	IdleTimeout Duration `toml:"idle_timeout"`
}

// SMTP configures the client-facing submission listeners (RFC 8314's
// implicit TLS, RFC 6409's submission port with STARTTLS); an empty
// address disables that listener. Both are off by default: sending needs
// the upstream to take postern's word for the user (Postfix's
// smtpd_authorized_xclient_hosts, or a master user), which a site sets up
// before it turns them on.
type SMTP struct {
	ListenTLS      string `toml:"listen_tls"`
	ListenSTARTTLS string `toml:"listen_starttls"`
	// Hostname is the name in postern's greeting and EHLO answer and in
	// its own EHLO to the upstream; empty means the system's host name.
	Hostname    string   `toml:"hostname"`
	IdleTimeout Duration `toml:"idle_timeout"`
}

// DAV configures the CalDAV/CardDAV listener (always TLS).
type DAV struct {
	Listen string `toml:"listen"`
	// CalDAVPath and CardDAVPath are where /.well-known/caldav and
	// /.well-known/carddav redirect; fixed here, never built from Host.
	CalDAVPath  string `toml:"caldav_path"`
	CardDAVPath string `toml:"carddav_path"`
	// CalDAVPrefixes and CardDAVPrefixes say which paths are CalDAV and
	// which CardDAV, so that an app password limited to one is refused for
	// the other; a "*" segment matches any one segment ("/*/contacts/").
	// A path under neither takes either scope.
	CalDAVPrefixes  []string `toml:"caldav_prefixes"`
	CardDAVPrefixes []string `toml:"carddav_prefixes"`
	// TrustedProxies are the addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For names the client; from anyone else it is ignored.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Admin configures the web pages, the JSON API and /metrics.
type Admin struct {
	Listen string `toml:"listen"`
	// PublicURL is the account page shown in login-failure hints.
	PublicURL string `toml:"public_url"`
	// TLS serves the admin side over HTTPS with the mail listeners'
	// certificates. false is allowed only on a loopback address, for a
	// reverse proxy in front that terminates TLS.
	TLS bool `toml:"tls"`
	// TrustedProxies are addresses or CIDR prefixes whose X-Forwarded-For
	// is believed; the client address is otherwise the peer's.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// TrustedPrefixes parses TrustedProxies (which Validate checks); bare
// addresses become single-address prefixes.
func (a Admin) TrustedPrefixes() []netip.Prefix { return prefixes(a.TrustedProxies) }

// TrustedPrefixes parses TrustedProxies (which Validate checks); bare
// addresses become single-address prefixes.
func (d DAV) TrustedPrefixes() []netip.Prefix { return prefixes(d.TrustedProxies) }

func prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, ok := parsePrefix(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// Upstream holds the servers postern logs in to on the user's behalf.
type Upstream struct {
	IMAP UpstreamIMAP `toml:"imap"`
	POP3 UpstreamPOP3 `toml:"pop3"`
	SMTP UpstreamSMTP `toml:"smtp"`
	DAV  UpstreamDAV  `toml:"dav"`
	// ActiveSync is served on the DAV listener; see Config.ActiveSyncEnabled.
	ActiveSync UpstreamActiveSync `toml:"activesync"`
}

// Security is how postern protects its connection to an upstream.
type Security string

// Upstream connection security; there is never a fallback from one to
// another.
const (
	SecurityImplicit Security = "implicit"
	SecurityStartTLS Security = "starttls"
	SecurityNone     Security = "none"
)

// LoginMode is how postern logs in to a mail upstream as the user.
type LoginMode string

const (
	// LoginMaster uses SASL PLAIN with authzid = user and the master
	// user's credential (Dovecot master user).
	LoginMaster LoginMode = "master"
	// LoginStored uses the user's upstream password kept sealed in the store.
	LoginStored LoginMode = "stored"
	// LoginXClient names the user with XCLIENT LOGIN= (Postfix, for hosts
	// in its smtpd_authorized_xclient_hosts); SMTP only.
	LoginXClient LoginMode = "xclient"
)

// MailUpstream is what the IMAP, POP3 and SMTP upstreams have in common.
type MailUpstream struct {
	Address    string    `toml:"address"`
	Security   Security  `toml:"security"`
	CAFile     string    `toml:"ca_file"`
	ServerName string    `toml:"server_name"`
	Login      LoginMode `toml:"login"`
	MasterUser string    `toml:"master_user"`
	// MasterPasswordFile holds the master password; the password itself
	// never appears in the configuration.
	MasterPasswordFile string   `toml:"master_password_file"`
	DialTimeout        Duration `toml:"dial_timeout"`
	LoginTimeout       Duration `toml:"login_timeout"`
}

// UpstreamIMAP is the IMAP server behind postern.
type UpstreamIMAP struct {
	MailUpstream
	// SendID tells the upstream the client's address with IMAP ID
	// (x-originating-ip), so its logs and limits see the real client.
	SendID bool `toml:"send_id"`
}

// UpstreamPOP3 is the POP3 server behind postern.
type UpstreamPOP3 struct {
	MailUpstream
	// XClient tells the upstream the client's address with XCLIENT.
	XClient bool `toml:"xclient"`
}

// UpstreamSMTP is the submission server behind postern. Its Login is
// LoginXClient or LoginMaster.
type UpstreamSMTP struct {
	MailUpstream
}

// DAVAuth is how postern tells a DAV upstream who the user is.
type DAVAuth string

const (
	// DAVAuthHeader sends the user name in a trusted header.
	DAVAuthHeader DAVAuth = "header"
	// DAVAuthStored sends the user's stored upstream password as Basic.
	DAVAuthStored DAVAuth = "stored"
)

// UpstreamDAV is the CalDAV/CardDAV server behind postern.
type UpstreamDAV struct {
	URL        string  `toml:"url"`
	Auth       DAVAuth `toml:"auth"`
	UserHeader string  `toml:"user_header"`
	CAFile     string  `toml:"ca_file"`
	// DialTimeout bounds a connection (and TLS handshake) to the upstream;
	// ResponseTimeout the wait for an answer's header once a request was sent.
	DialTimeout     Duration `toml:"dial_timeout"`
	ResponseTimeout Duration `toml:"response_timeout"`
	// KeepAlive reuses upstream connections. SOGo closes each connection
	// after its answer without saying so, and a request sent on one it
	// has just closed is lost: in front of SOGo it is off.
	KeepAlive bool `toml:"keep_alive"`
}

// ActiveSyncPath is where clients reach ActiveSync on the DAV listener
// (MS-ASHTTP section 2.2.1.1.1); autodiscover and device profiles name it.
const ActiveSyncPath = "/Microsoft-Server-ActiveSync"

// UpstreamActiveSync is the Exchange ActiveSync server behind postern
// (SOGo's ActiveSync). An empty URL turns ActiveSync off.
type UpstreamActiveSync struct {
	// URL is the upstream's ActiveSync endpoint, path included; requests
	// to ActiveSyncPath go there (SOGo:
	// http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync).
	URL string `toml:"url"`
	// Auth is DAVAuthHeader (UserHeader names the user, and the master
	// password goes beside it as Basic, with x-webobjects-auth-type:
	// Basic: how SOGo, trusting a proxy, learns the password it logs in
	// to IMAP with) or DAVAuthStored (the user's stored upstream password
	// as Basic).
	Auth       DAVAuth `toml:"auth"`
	UserHeader string  `toml:"user_header"`
	// MasterPasswordFile holds the master password of DAVAuthHeader: the
	// password of Dovecot's master user, which SOGo's user table names in
	// each user's imap_login ("alice*master").
	MasterPasswordFile string   `toml:"master_password_file"`
	CAFile             string   `toml:"ca_file"`
	DialTimeout        Duration `toml:"dial_timeout"`
	// ResponseTimeout bounds the wait for an answer's header: at least an
	// hour, since a phone's Ping and Sync wait up to 59 minutes.
	ResponseTimeout Duration `toml:"response_timeout"`
	// KeepAlive reuses upstream connections; see UpstreamDAV.KeepAlive.
	KeepAlive bool `toml:"keep_alive"`
}

// ActiveSyncEnabled reports whether postern serves ActiveSync: at
// ActiveSyncPath on the DAV listener, when both are configured.
func (c *Config) ActiveSyncEnabled() bool {
	return c.DAV.Listen != "" && c.Upstream.ActiveSync.URL != ""
}

// Policy holds account-policy timings.
type Policy struct {
	AdminCodeTTL Duration `toml:"admin_code_ttl"`
	// ReauthWindow is how long a re-verification allows security changes.
	ReauthWindow Duration `toml:"reauth_window"`
}

// Limits bounds what clients can cost postern and what guessing can gain.
type Limits struct {
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	PreauthTimeout      Duration `toml:"preauth_timeout"`
	MaxBadCommands      int      `toml:"max_bad_commands"`
	MaxLineBytes        int      `toml:"max_line_bytes"`
	// UserFailureBudget bounds the wrong secrets verified for one account
	// over any 24 h from sources not known-good for it, across every
	// protocol and the web; successful logins in between do not reopen it.
	UserFailureBudget int `toml:"user_failure_budget"`
	// UserSourceFailureBudget bounds the wrong secrets verified for one
	// account from one source over any 24 h. It is what still holds a
	// source that logged in successfully before, which the account budget
	// lets through so its owner keeps working.
	UserSourceFailureBudget int `toml:"user_source_failure_budget"`
	// SourceFreeFailures are the failures a source may make before each
	// answer to it is delayed, starting at SourceDelay and doubling up to
	// SourceMaxDelay.
	SourceFreeFailures int      `toml:"source_free_failures"`
	SourceDelay        Duration `toml:"source_delay"`
	SourceMaxDelay     Duration `toml:"source_max_delay"`
	// StaleSecretWindow is how long a repeat of the same wrong secret from
	// one source is not charged again (a phone retrying an old password).
	StaleSecretWindow Duration `toml:"stale_secret_window"`
	LastUsedFlush     Duration `toml:"lastused_flush"`
}

// Backup configures the backups the server writes on its own. They are
// encrypted to Recipients only: a passphrase would have to be stored.
type Backup struct {
	// Dir is where scheduled backups go; empty turns them off.
	Dir string `toml:"dir"`
	// Every is the time between two scheduled backups.
	Every Duration `toml:"every"`
	// Keep is how many scheduled backups for the current recipients are
	// kept; older ones are deleted after each new one.
	Keep int `toml:"keep"`
	// Recipients are age public keys ("age1…"); the matching identities
	// live elsewhere, so the server holds nothing that decrypts a backup.
	// `postern store backup` also uses them when given no other lock.
	Recipients []string `toml:"recipients"`
}

// Audit configures the audit log's retention.
type Audit struct {
	// Keep is how long events are kept; older ones are pruned daily
	// (`postern audit export` archives them first if wanted).
	Keep Duration `toml:"keep"`
}

// Default returns a Config holding every default. It is the one place
// defaults are set: Parse decodes the file on top of it.
func Default() *Config {
	return &Config{
		DataDir: "/var/lib/postern",
		KeyFile: "/etc/postern/postern.key",
		Log:     Log{Level: "info", Format: "text"},
		TLS: TLS{
			Certificates:   []Certificate{},
			ReloadInterval: Duration{time.Minute},
		},
		// 31 minutes: RFC 9051 section 5.4 lets a server log out an idle
		// client after at least 30 minutes; IDLE clients re-issue at 29.
		IMAP: IMAP{ListenTLS: ":993", ListenSTARTTLS: ":143", IdleTimeout: Duration{31 * time.Minute}},
		// 10 minutes: RFC 1939 section 3 minimum autologout timer.
		POP3: POP3{ListenTLS: ":995", ListenSTLS: ":110", IdleTimeout: Duration{10 * time.Minute}},
		// 10 minutes: RFC 5321 section 4.5.3.2 lets a client wait that long
		// for the answer to a message's final dot, and a server must wait
		// at least 5 for the next command.
		SMTP: SMTP{IdleTimeout: Duration{10 * time.Minute}},
		DAV: DAV{CalDAVPath: "/", CardDAVPath: "/", CalDAVPrefixes: []string{}, CardDAVPrefixes: []string{},
			TrustedProxies: []string{}},
		Admin: Admin{Listen: "127.0.0.1:8080", TLS: true, TrustedProxies: []string{}},
		Upstream: Upstream{
			IMAP: UpstreamIMAP{MailUpstream: defaultMailUpstream("127.0.0.1:143"), SendID: true},
			POP3: UpstreamPOP3{MailUpstream: defaultMailUpstream("127.0.0.1:110")},
			SMTP: UpstreamSMTP{MailUpstream: defaultSMTPUpstream()},
			DAV: UpstreamDAV{Auth: DAVAuthHeader, UserHeader: "X-Remote-User",
				DialTimeout: Duration{5 * time.Second}, ResponseTimeout: Duration{60 * time.Second}, KeepAlive: true},
			// 61 minutes: MS-ASCMD lets a Ping's HeartbeatInterval and a
			// Sync's Wait reach 59 minutes, and the answer comes after.
			ActiveSync: UpstreamActiveSync{Auth: DAVAuthHeader, UserHeader: "x-webobjects-remote-user",
				DialTimeout: Duration{5 * time.Second}, ResponseTimeout: Duration{61 * time.Minute}},
		},
		Policy: Policy{AdminCodeTTL: Duration{72 * time.Hour}, ReauthWindow: Duration{5 * time.Minute}},
		Limits: Limits{
			MaxConnections:          10000,
			MaxConnectionsPerIP:     50,
			PreauthTimeout:          Duration{60 * time.Second},
			MaxBadCommands:          5,
			MaxLineBytes:            8192,
			UserFailureBudget:       100,
			UserSourceFailureBudget: 20,
			SourceFreeFailures:      5,
			SourceDelay:             Duration{2 * time.Second},
			SourceMaxDelay:          Duration{15 * time.Second},
			StaleSecretWindow:       Duration{15 * time.Minute},
			LastUsedFlush:           Duration{30 * time.Second},
		},
		Backup: Backup{Every: Duration{24 * time.Hour}, Keep: 14, Recipients: []string{}},
		Audit:  Audit{Keep: Duration{400 * 24 * time.Hour}},
	}
}

func defaultSMTPUpstream() MailUpstream {
	u := defaultMailUpstream("127.0.0.1:587")
	u.Login = LoginXClient
	return u
}

func defaultMailUpstream(addr string) MailUpstream {
	return MailUpstream{
		Address:      addr,
		Security:     SecurityStartTLS,
		Login:        LoginMaster,
		DialTimeout:  Duration{5 * time.Second},
		LoginTimeout: Duration{15 * time.Second},
	}
}
