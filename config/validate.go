package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validate checks ranges, enumerations, addresses, URLs and that the files
// the configuration names can be read. It reports every problem it finds
// as an *Errors, each located at its key when the key came from a file.
//
// An upstream's required settings (master user, password file, DAV URL)
// are demanded only when a listener that uses it is enabled, so that a
// DAV-only or IMAP-only deployment does not have to fill in the rest.
func (c *Config) Validate() error {
	return errorsOf(c.validate())
}

func (c *Config) validate() []Error {
	v := &validator{src: c.src}
	v.paths(c)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.listeners(c)
	// RFC 9051 section 5.4 and RFC 1939 section 3 set the least time a
	// server must let an idle client be.
	v.duration("imap.idle_timeout", c.IMAP.IdleTimeout, 31*time.Minute, 24*time.Hour)
	v.duration("pop3.idle_timeout", c.POP3.IdleTimeout, 10*time.Minute, 24*time.Hour)
	// RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for
	// the next command.
	v.duration("smtp.idle_timeout", c.SMTP.IdleTimeout, 5*time.Minute, 24*time.Hour)
	v.hostname("smtp.hostname", c.SMTP.Hostname)
	v.tls(c)
	v.dav(c.DAV)
	v.admin(c.Admin)
	imapOn := c.IMAP.ListenTLS != "" || c.IMAP.ListenSTARTTLS != ""
	popOn := c.POP3.ListenTLS != "" || c.POP3.ListenSTLS != ""
	smtpOn := c.SMTP.ListenTLS != "" || c.SMTP.ListenSTARTTLS != ""
	v.mailUpstream("upstream.imap", c.Upstream.IMAP.MailUpstream, imapOn, LoginMaster, LoginStored)
	v.mailUpstream("upstream.pop3", c.Upstream.POP3.MailUpstream, popOn, LoginMaster, LoginStored)
	v.mailUpstream("upstream.smtp", c.Upstream.SMTP.MailUpstream, smtpOn, LoginXClient, LoginMaster)
	v.davUpstream(c.Upstream.DAV, c.DAV.Listen != "")
	v.activeSyncUpstream(c.Upstream.ActiveSync, c.DAV.Listen != "")
	v.policy(c.Policy)
	v.limits(c.Limits)
	v.backup(c)
	// A year and a month keeps a year's events through a monthly archive.
	v.duration("audit.keep", c.Audit.Keep, 24*time.Hour, 100*365*24*time.Hour)
	return v.errs
}

func (v *validator) paths(c *Config) {
	v.required("data_dir", c.DataDir)
	v.required("key_file", c.KeyFile)
	if c.DataDir != "" && c.KeyFile != "" && within(c.KeyFile, c.DataDir) {
		v.add("key_file", "must be outside data_dir, so that a backup of the data never carries the key")
	}
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(absPath(dir), absPath(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

type listener struct{ key, addr string }

// clientListeners all speak TLS, implicitly or after STARTTLS/STLS, since
// no credential is accepted in cleartext.
func clientListeners(c *Config) []listener {
	return []listener{
		{"imap.listen_tls", c.IMAP.ListenTLS},
		{"imap.listen_starttls", c.IMAP.ListenSTARTTLS},
		{"pop3.listen_tls", c.POP3.ListenTLS},
		{"pop3.listen_stls", c.POP3.ListenSTLS},
		{"smtp.listen_tls", c.SMTP.ListenTLS},
		{"smtp.listen_starttls", c.SMTP.ListenSTARTTLS},
		{"dav.listen", c.DAV.Listen},
	}
}

func (v *validator) listeners(c *Config) {
	client := clientListeners(c)
	if !slices.ContainsFunc(client, func(l listener) bool { return l.addr != "" }) {
		keys := make([]string, len(client))
		for i, l := range client {
			keys[i] = l.key
		}
		v.add("", "no listener enabled: set "+strings.Join(keys[:len(keys)-1], ", ")+" or "+keys[len(keys)-1])
	}
	seen := map[string]string{}
	for _, l := range append(client, listener{"admin.listen", c.Admin.Listen}) {
		if l.addr == "" {
			continue
		}
		norm, ok := v.listenAddr(l.key, l.addr)
		if !ok || strings.HasSuffix(norm, ":0") {
			continue // port 0 picks a free port each time, so it cannot clash
		}
		if other, dup := seen[norm]; dup {
			v.add(l.key, fmt.Sprintf("%q is already used by %s", l.addr, other))
		}
		seen[norm] = l.key
	}
}

func (v *validator) tls(c *Config) {
	v.duration("tls.reload_interval", c.TLS.ReloadInterval, time.Second, 24*time.Hour)
	for i, cert := range c.TLS.Certificates {
		prefix := fmt.Sprintf("tls.certificates[%d].", i)
		if v.required(prefix+"cert_file", cert.CertFile) {
			v.readable(prefix+"cert_file", cert.CertFile)
		}
		if v.required(prefix+"key_file", cert.KeyFile) {
			v.readable(prefix+"key_file", cert.KeyFile)
		}
	}
	if len(c.TLS.Certificates) > 0 || c.TLS.SelfSigned {
		return
	}
	for _, l := range clientListeners(c) {
		if l.addr != "" {
			v.add("tls.certificates", fmt.Sprintf("%s needs a certificate: add [[tls.certificates]] or set tls.self_signed = true", l.key))
			return
		}
	}
}

func (v *validator) dav(d DAV) {
	v.urlPath("dav.caldav_path", d.CalDAVPath)
	v.urlPath("dav.carddav_path", d.CardDAVPath)
	for i, p := range d.CalDAVPrefixes {
		v.urlPath(fmt.Sprintf("dav.caldav_prefixes[%d]", i), p)
	}
	for i, p := range d.CardDAVPrefixes {
		v.urlPath(fmt.Sprintf("dav.carddav_prefixes[%d]", i), p)
	}
	for i, p := range d.TrustedProxies {
		if _, ok := parsePrefix(p); !ok {
			v.add(fmt.Sprintf("dav.trusted_proxies[%d]", i), fmt.Sprintf("%q is not an IP address or CIDR prefix", p))
		}
	}
}

func (v *validator) admin(a Admin) {
	if a.PublicURL != "" {
		v.httpURL("admin.public_url", a.PublicURL)
	}
	if !a.TLS && a.Listen != "" {
		host, _, err := net.SplitHostPort(a.Listen)
		ip, perr := netip.ParseAddr(host)
		if err == nil && (host == "localhost" || (perr == nil && ip.IsLoopback())) {
			// loopback: a reverse proxy in front terminates TLS
		} else {
			v.add("admin.tls", fmt.Sprintf("false is allowed only with a loopback admin.listen, not %q", a.Listen))
		}
	}
	for i, p := range a.TrustedProxies {
		if _, ok := parsePrefix(p); !ok {
			v.add(fmt.Sprintf("admin.trusted_proxies[%d]", i), fmt.Sprintf("%q is not an IP address or CIDR prefix", p))
		}
	}
}

// mailUpstream checks an upstream section; logins are the login modes
// its protocol supports.
func (v *validator) mailUpstream(prefix string, u MailUpstream, enabled bool, logins ...LoginMode) {
	key := func(name string) string { return prefix + "." + name }
	v.dialAddr(key("address"), u.Address)
	v.oneOf(key("security"), string(u.Security), string(SecurityImplicit), string(SecurityStartTLS), string(SecurityNone))
	v.caFile(key("ca_file"), u.CAFile)
	allowed := make([]string, len(logins))
	for i, l := range logins {
		allowed[i] = string(l)
	}
	v.oneOf(key("login"), string(u.Login), allowed...)
	// The master user goes into SASL PLAIN; a control character there
	// could end the upstream command early.
	v.noControls(key("master_user"), u.MasterUser)
	v.optionalFile(key("master_password_file"), u.MasterPasswordFile)
	if enabled && u.Login == LoginMaster {
		v.requiredFor(key("master_user"), u.MasterUser, `login = "master"`)
		v.requiredFor(key("master_password_file"), u.MasterPasswordFile, `login = "master"`)
	}
	v.duration(key("dial_timeout"), u.DialTimeout, 100*time.Millisecond, 5*time.Minute)
	v.duration(key("login_timeout"), u.LoginTimeout, 100*time.Millisecond, 5*time.Minute)
}

func (v *validator) davUpstream(u UpstreamDAV, enabled bool) {
	if u.URL != "" {
		v.httpURL("upstream.dav.url", u.URL)
	} else if enabled {
		v.add("upstream.dav.url", "required when dav.listen is set")
	}
	v.oneOf("upstream.dav.auth", string(u.Auth), string(DAVAuthHeader), string(DAVAuthStored))
	if u.Auth == DAVAuthHeader {
		v.headerName("upstream.dav.user_header", u.UserHeader)
	}
	v.caFile("upstream.dav.ca_file", u.CAFile)
	v.duration("upstream.dav.dial_timeout", u.DialTimeout, 100*time.Millisecond, 5*time.Minute)
	v.duration("upstream.dav.response_timeout", u.ResponseTimeout, time.Second, time.Hour)
}

// activeSyncUpstream checks upstream.activesync; davOn says whether the
// DAV listener it is served on is enabled.
func (v *validator) activeSyncUpstream(u UpstreamActiveSync, davOn bool) {
	const key = "upstream.activesync."
	if u.URL != "" {
		v.httpURL(key+"url", u.URL)
		if !davOn {
			v.add(key+"url", "needs dav.listen: ActiveSync is served on the DAV listener")
		}
	}
	v.oneOf(key+"auth", string(u.Auth), string(DAVAuthHeader), string(DAVAuthStored))
	v.optionalFile(key+"master_password_file", u.MasterPasswordFile)
	if u.Auth == DAVAuthHeader {
		v.headerName(key+"user_header", u.UserHeader)
		if u.URL != "" && davOn {
			v.requiredFor(key+"master_password_file", u.MasterPasswordFile,
				`auth = "header": SOGo logs in to IMAP with the password beside the header`)
		}
	}
	v.caFile(key+"ca_file", u.CAFile)
	v.duration(key+"dial_timeout", u.DialTimeout, 100*time.Millisecond, 5*time.Minute)
	// MS-ASCMD: a Ping's HeartbeatInterval and a Sync's Wait reach 59
	// minutes; a shorter bound would cut the phone's wait.
	v.duration(key+"response_timeout", u.ResponseTimeout, time.Hour, 24*time.Hour)
}

func (v *validator) policy(p Policy) {
	v.duration("policy.admin_code_ttl", p.AdminCodeTTL, time.Minute, 30*24*time.Hour)
	// A short window only asks for re-verification more often: the pages
	// run the change a re-verification unlocks in the same request, so even
	// 1s works there (API clients need their next call within it).
	v.duration("policy.reauth_window", p.ReauthWindow, time.Second, time.Hour)
}

func (v *validator) limits(l Limits) {
	v.between("limits.max_connections", l.MaxConnections, 1, 1000000)
	v.between("limits.max_connections_per_ip", l.MaxConnectionsPerIP, 1, 1000000)
	if l.MaxConnectionsPerIP > l.MaxConnections && l.MaxConnections > 0 {
		v.add("limits.max_connections_per_ip", fmt.Sprintf("must not exceed limits.max_connections (%d)", l.MaxConnections))
	}
	v.duration("limits.preauth_timeout", l.PreauthTimeout, time.Second, 10*time.Minute)
	v.between("limits.max_bad_commands", l.MaxBadCommands, 1, 100)
	// 1 KiB fits any real login line; 1 MiB keeps per-connection memory
	// bounded when thousands of clients send partial lines.
	v.between("limits.max_line_bytes", l.MaxLineBytes, 1024, 1<<20)
	v.between("limits.user_failure_budget", l.UserFailureBudget, 1, 1000000)
	v.between("limits.user_source_failure_budget", l.UserSourceFailureBudget, 1, 1000000)
	v.between("limits.source_free_failures", l.SourceFreeFailures, 0, 1000)
	v.duration("limits.source_delay", l.SourceDelay, time.Millisecond, time.Minute)
	v.duration("limits.source_max_delay", l.SourceMaxDelay, time.Millisecond, 10*time.Minute)
	if l.SourceMaxDelay.Duration < l.SourceDelay.Duration {
		v.add("limits.source_max_delay", fmt.Sprintf("must be at least limits.source_delay (%s)", l.SourceDelay))
	}
	v.duration("limits.stale_secret_window", l.StaleSecretWindow, time.Minute, 24*time.Hour)
	v.duration("limits.lastused_flush", l.LastUsedFlush, time.Second, time.Hour)
}

func (v *validator) backup(c *Config) {
	b := c.Backup
	v.duration("backup.every", b.Every, time.Minute, 90*24*time.Hour)
	v.between("backup.keep", b.Keep, 1, 10000)
	for i, r := range b.Recipients {
		if !ageRecipient(r) {
			v.add(fmt.Sprintf("backup.recipients[%d]", i), fmt.Sprintf("%q is not an age public key (age1 followed by 58 lowercase letters and digits)", r))
		}
	}
	if b.Dir == "" {
		return
	}
	if !filepath.IsAbs(b.Dir) {
		v.add("backup.dir", fmt.Sprintf("must be an absolute path; got %q", b.Dir))
	}
	if len(b.Recipients) == 0 {
		v.add("backup.recipients", "required when backup.dir is set: the server encrypts its scheduled backups to public keys only")
	}
	if c.DataDir != "" && within(b.Dir, c.DataDir) {
		v.add("backup.dir", "must be outside data_dir: a backup kept beside the store is lost with it")
	}
}

// ageRecipient checks the form of an age X25519 public key: "age1" and 58
// characters of the Bech32 alphabet.
func ageRecipient(s string) bool {
	const bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	rest, ok := strings.CutPrefix(s, "age1")
	return ok && len(rest) == 58 && !strings.ContainsFunc(rest, func(r rune) bool { return !strings.ContainsRune(bech32, r) })
}
