package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestValidateReportsProblems(t *testing.T) {
	dir := t.TempDir()
	files := strings.NewReplacer(
		"{file}", writeFile(t, "present.pem", "x"),
		"{missing}", filepath.Join(dir, "missing.pem"),
		"{dir}", dir,
	)
	tests := []struct {
		name, doc, want string
	}{
		{"out of range", "[limits]\nmax_connections = 0\n",
			"postern.toml:2:1: limits.max_connections: must be between 1 and 1000000"},
		{"indented key", "[limits]\n\tmax_connections   =   2000000\n",
			"postern.toml:2:2: limits.max_connections: must be between 1 and 1000000"},
		{"per-source cap above the total", "[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n",
			"postern.toml:3:1: limits.max_connections_per_ip: must not exceed limits.max_connections (10)"},
		{"line limit too small", "[limits]\nmax_line_bytes = 100\n",
			"postern.toml:2:1: limits.max_line_bytes: must be between 1024 and 1048576"},
		{"log level", "[log]\nlevel = 'verbose'\n",
			`postern.toml:2:1: log.level: must be one of "debug", "info", "warn", "error"; got "verbose"`},
		{"log format", "[log]\nformat = 'xml'\n",
			`postern.toml:2:1: log.format: must be one of "text", "json"; got "xml"`},
		{"upstream security", "[upstream.pop3]\nsecurity = 'tls'\n",
			`postern.toml:2:1: upstream.pop3.security: must be one of "implicit", "starttls", "none"; got "tls"`},
		{"upstream login", "[upstream.imap]\nlogin = 'plain'\n",
			`postern.toml:2:1: upstream.imap.login: must be one of "master", "stored"; got "plain"`},
		{"stored login upstream for SMTP", "[upstream.smtp]\nlogin = 'stored'\n",
			`postern.toml:2:1: upstream.smtp.login: must be one of "xclient", "master"; got "stored"`},
		{"XCLIENT login for IMAP", "[upstream.imap]\nlogin = 'xclient'\n",
			`postern.toml:2:1: upstream.imap.login: must be one of "master", "stored"; got "xclient"`},
		{"SMTP master login without a master user", "[smtp]\nlisten_tls = ':465'\n[upstream.smtp]\nlogin = 'master'\n",
			`postern.toml: upstream.smtp.master_user: required when login = "master"`},
		{"SMTP host name with a space", "[smtp]\nhostname = 'mail example'\n",
			`postern.toml:2:1: smtp.hostname: must be a host name such as mail.example.org; got "mail example"`},
		{"SMTP host name with an empty label", "[smtp]\nhostname = 'mail..example.org'\n",
			`postern.toml:2:1: smtp.hostname: must be a host name`},
		{"SMTP idle below RFC 5321", "[smtp]\nidle_timeout = '4m'\n",
			"postern.toml:2:1: smtp.idle_timeout: must be between 5m and 24h"},
		{"SMTP on the IMAP port", "[smtp]\nlisten_starttls = ':993'\n",
			`postern.toml:2:1: smtp.listen_starttls: ":993" is already used by imap.listen_tls`},
		{"SMTP upstream without a port", "[upstream.smtp]\naddress = 'mail.example.org'\n",
			`postern.toml:2:1: upstream.smtp.address: invalid address "mail.example.org": want host:port`},
		{"dav auth", "[upstream.dav]\nauth = 'basic'\n",
			`postern.toml:2:1: upstream.dav.auth: must be one of "header", "stored"; got "basic"`},
		{"listen port too large", "[imap]\nlisten_tls = ':99999'\n",
			`postern.toml:2:1: imap.listen_tls: invalid address ":99999": port must be a number from 0 to 65535`},
		{"listen without port", "[pop3]\nlisten_tls = 'localhost'\n",
			`postern.toml:2:1: pop3.listen_tls: invalid address "localhost": want host:port`},
		{"listen port by name", "[admin]\nlisten = '127.0.0.1:http'\n",
			`postern.toml:2:1: admin.listen: invalid address "127.0.0.1:http": port must be a number`},
		{"plain admin HTTP off loopback", "[admin]\nlisten = '0.0.0.0:8080'\ntls = false\n",
			`postern.toml:3:1: admin.tls: false is allowed only with a loopback admin.listen, not "0.0.0.0:8080"`},
		{"trusted proxy not an address", "[admin]\ntrusted_proxies = ['127.0.0.1', 'proxy.local']\n",
			`postern.toml:2:33: admin.trusted_proxies[1]: "proxy.local" is not an IP address or CIDR prefix`},
		{"same address twice", "[imap]\nlisten_tls = ':1993'\n[pop3]\nlisten_tls = ':1993'\n",
			`postern.toml:4:1: pop3.listen_tls: ":1993" is already used by imap.listen_tls`},
		{"upstream without host", "[upstream.imap]\naddress = ':143'\n",
			`postern.toml:2:1: upstream.imap.address: invalid address ":143": want host:port`},
		{"upstream port 0", "[upstream.imap]\naddress = 'mail:0'\n",
			`postern.toml:2:1: upstream.imap.address: invalid address "mail:0": port must be a number from 1 to 65535`},
		{"IMAP idle below RFC 9051", "[imap]\nidle_timeout = '30m'\n",
			"postern.toml:2:1: imap.idle_timeout: must be between 31m and 24h"},
		{"POP3 idle below RFC 1939", "[pop3]\nidle_timeout = '9m59s'\n",
			"postern.toml:2:1: pop3.idle_timeout: must be between 10m and 24h"},
		{"backup recipient not an age key", "[backup]\nrecipients = ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p', 'ssh-ed25519 AAAA']\n",
			`postern.toml:2:81: backup.recipients[1]: "ssh-ed25519 AAAA" is not an age public key (age1 followed by 58 lowercase letters and digits)`},
		{"backup dir without recipients", "[backup]\ndir = '/var/backups/postern'\n",
			"postern.toml: backup.recipients: required when backup.dir is set: the server encrypts its scheduled backups to public keys only"},
		{"backup dir relative", "[backup]\ndir = 'backups'\nrecipients = ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p']\n",
			`postern.toml:2:1: backup.dir: must be an absolute path; got "backups"`},
		{"backup keep zero", "[backup]\nkeep = 0\n", "postern.toml:2:1: backup.keep: must be between 1 and 10000"},
		{"audit keep too short", "[audit]\nkeep = '1h'\n", "postern.toml:2:1: audit.keep: must be between 24h and 876000h"},
		{"zero duration", "[limits]\nlastused_flush = '0s'\n",
			"postern.toml:2:1: limits.lastused_flush: must be between 1s and 1h"},
		{"negative duration", "[upstream.imap]\ndial_timeout = '-5s'\n",
			"postern.toml:2:1: upstream.imap.dial_timeout: must be between 100ms and 5m"},
		{"re-verification window under a second", "[policy]\nreauth_window = '500ms'\n",
			"postern.toml:2:1: policy.reauth_window: must be between 1s and 1h"},
		{"re-verification window over an hour", "[policy]\nreauth_window = '61m'\n",
			"postern.toml:2:1: policy.reauth_window: must be between 1s and 1h"},
		{"code lifetime in days", "[policy]\nadmin_code_ttl = '31d'\n",
			"postern.toml:2:1: policy.admin_code_ttl: must be between 1m and 720h"},
		{"longest delay below the first", "[limits]\nsource_delay = '20s'\nsource_max_delay = '15s'\n",
			"postern.toml:3:1: limits.source_max_delay: must be at least limits.source_delay (20s)"},
		{"missing CA file", "[upstream.imap]\nca_file = '{missing}'\n",
			`postern.toml:2:1: upstream.imap.ca_file: cannot read "{missing}": no such file or directory`},
		{"CA file without a certificate", "[upstream.imap]\nca_file = '{file}'\n",
			`postern.toml:2:1: upstream.imap.ca_file: "{file}" holds no PEM certificate`},
		{"directory as CA file", "[upstream.dav]\nca_file = '{dir}'\n",
			`postern.toml:2:1: upstream.dav.ca_file: "{dir}" is not a regular file`},
		{"missing master password file", "[upstream.pop3]\nmaster_user = 'proxy'\nmaster_password_file = '{missing}'\n",
			`postern.toml:3:1: upstream.pop3.master_password_file: cannot read "{missing}"`},
		{"master user with a line break", "[upstream.imap]\nmaster_user = \"proxy\\r\\nx\"\n",
			"postern.toml:2:1: upstream.imap.master_user: must not contain control characters"},
		{"missing certificate file", "[[tls.certificates]]\ncert_file = '{missing}'\nkey_file = '{file}'\n",
			`postern.toml:2:1: tls.certificates[0].cert_file: cannot read "{missing}"`},
		{"certificate without key is located at its element", "[tls]\n[[tls.certificates]]\ncert_file = '{file}'\n",
			"postern.toml:2:3: tls.certificates[0].key_file: required"},
		{"inline certificate without files", "[tls]\ncertificates = [{}, { cert_file = '{file}' }]\n",
			"postern.toml:2:17: tls.certificates[0].cert_file: required"},
		{"public URL not absolute", "[admin]\npublic_url = '/account'\n",
			`postern.toml:2:1: admin.public_url: must be an absolute http or https URL; got "/account"`},
		{"public URL with credentials", "[admin]\npublic_url = 'https://u:p@mail.example.org/'\n",
			"postern.toml:2:1: admin.public_url: must not contain a user name or password"},
		{"DAV URL scheme", "[upstream.dav]\nurl = 'ftp://127.0.0.1/'\n",
			"postern.toml:2:1: upstream.dav.url: must be an absolute http or https URL"},
		{"well-known path to another host", "[dav]\ncaldav_path = '//evil.example/'\n",
			`postern.toml:2:1: dav.caldav_path: must be a URL path starting with a single "/"`},
		{"relative DAV path", "[dav]\ncarddav_path = 'dav/'\n",
			`postern.toml:2:1: dav.carddav_path: must be a URL path`},
		{"header name with a space", "[upstream.dav]\nuser_header = 'X Remote User'\n",
			`postern.toml:2:1: upstream.dav.user_header: must be an HTTP header name; got "X Remote User"`},
		{"ActiveSync URL scheme", "[dav]\nlisten = ':8443'\n[upstream.activesync]\nurl = 'ftp://127.0.0.1/'\n",
			"postern.toml:4:1: upstream.activesync.url: must be an absolute http or https URL"},
		{"ActiveSync without the DAV listener", "[upstream.activesync]\nurl = 'http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync'\n",
			"postern.toml:2:1: upstream.activesync.url: needs dav.listen: ActiveSync is served on the DAV listener"},
		{"ActiveSync master password needed for the header",
			"[dav]\nlisten = ':8443'\n[upstream.dav]\nurl = 'http://127.0.0.1:20000/'\n[upstream.activesync]\nurl = 'http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync'\n",
			`postern.toml: upstream.activesync.master_password_file: required when auth = "header"`},
		{"ActiveSync auth", "[upstream.activesync]\nauth = 'master'\n",
			`postern.toml:2:1: upstream.activesync.auth: must be one of "header", "stored"; got "master"`},
		{"ActiveSync user header with a colon", "[upstream.activesync]\nuser_header = 'x-webobjects-remote-user:'\n",
			`postern.toml:2:1: upstream.activesync.user_header: must be an HTTP header name`},
		{"ActiveSync response timeout shorter than a Ping", "[upstream.activesync]\nresponse_timeout = '59m'\n",
			"postern.toml:2:1: upstream.activesync.response_timeout: must be between 1h and 24h"},
		{"ActiveSync master password file missing", "[upstream.activesync]\nmaster_password_file = '{missing}'\n",
			"postern.toml:2:1: upstream.activesync.master_password_file:"},
		{"key file inside data dir", "data_dir = '/srv/postern'\nkey_file = '/srv/postern/keys/postern.key'\n",
			"postern.toml:2:1: key_file: must be outside data_dir"},
		{"empty data dir", "data_dir = ''\n", "postern.toml:1:1: data_dir: required"},
		// Keys that kept their default have no position.
		{"DAV URL needed once DAV listens", "[dav]\nlisten = ':8443'\n",
			"postern.toml: upstream.dav.url: required when dav.listen is set"},
		{"master user needed by default", "",
			`postern.toml: upstream.imap.master_user: required when login = "master"`},
		{"master password needed by default", "",
			`postern.toml: upstream.pop3.master_password_file: required when login = "master"`},
		{"certificate needed by default", "",
			"postern.toml: tls.certificates: imap.listen_tls needs a certificate"},
		{"certificate needed when the key is empty", "[tls]\ncertificates = []\n",
			"postern.toml:2:1: tls.certificates: imap.listen_tls needs a certificate"},
		{"no listener", "[imap]\nlisten_tls = ''\nlisten_starttls = ''\n[pop3]\nlisten_tls = ''\nlisten_stls = ''\n",
			"postern.toml: no listener enabled: set imap.listen_tls, imap.listen_starttls, pop3.listen_tls, pop3.listen_stls, " +
				"smtp.listen_tls, smtp.listen_starttls or dav.listen"},
		{"certificate needed for SMTP alone", "[imap]\nlisten_tls = ''\nlisten_starttls = ''\n[pop3]\nlisten_tls = ''\nlisten_stls = ''\n" +
			"[smtp]\nlisten_starttls = ':587'\n",
			"postern.toml: tls.certificates: smtp.listen_starttls needs a certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantLine(t, parseFails(t, files.Replace(tt.doc)), files.Replace(tt.want))
		})
	}
}

// TestValidateDemandsOnlyWhatIsUsed checks the flip side of the rules above:
// settings of a disabled front-end's upstream are not required.
func TestValidateDemandsOnlyWhatIsUsed(t *testing.T) {
	tests := []struct {
		name, doc, absent string
	}{
		{"IMAP off", "[imap]\nlisten_tls = ''\nlisten_starttls = ''\n", "upstream.imap.master_user"},
		{"POP3 off", "[pop3]\nlisten_tls = ''\nlisten_stls = ''\n", "upstream.pop3.master_password_file"},
		{"stored logins", "[upstream.imap]\nlogin = 'stored'\n", "upstream.imap.master_user"},
		{"DAV off", "", "upstream.dav.url"},
		{"SMTP off", "[upstream.smtp]\nlogin = 'master'\n", "upstream.smtp.master_user"},
		{"ActiveSync off", "[dav]\nlisten = ':8443'\n[upstream.dav]\nurl = 'http://127.0.0.1:20000/'\n", "upstream.activesync"},
		{"ActiveSync with stored passwords", "[dav]\nlisten = ':8443'\n[upstream.dav]\nurl = 'http://127.0.0.1:20000/'\n" +
			"[upstream.activesync]\nurl = 'http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync'\nauth = 'stored'\n", "upstream.activesync"},
		{"SMTP by XCLIENT", "[smtp]\nlisten_tls = ':465'\n", "upstream.smtp"},
		{"SMTP on the system's host name", "", "smtp.hostname"},
		{"self-signed", "[tls]\nself_signed = true\n", "tls.certificates"},
		{"port 0 twice", "[imap]\nlisten_tls = ':0'\n[pop3]\nlisten_tls = ':0'\n", "already used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, l := range parseFails(t, tt.doc) {
				if strings.Contains(l, tt.absent) {
					t.Errorf("unexpected problem %q", l)
				}
			}
		})
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	c := Default()
	c.TLS.SelfSigned = true
	c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c.Limits.MaxConnections = 0
	c.Log.Level = "loud"
	err := c.Validate()
	want := `log.level: must be one of "debug", "info", "warn", "error"; got "loud"` + "\n" +
		"limits.max_connections: must be between 1 and 1000000"
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "" || e.Line != 0 || e.Key != "log.level" {
		t.Errorf("first problem = %+v, want log.level without file or position", e)
	}
}

func TestValidateUnreadableFile(t *testing.T) {
	p := writeFile(t, "secret.pw", "pw")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(p); err == nil {
		f.Close()
		t.Skip("running with privileges that read any file")
	}
	c := Default()
	c.TLS.SelfSigned = true
	c.Upstream.IMAP.MasterUser, c.Upstream.IMAP.MasterPasswordFile = "proxy", p
	c.Upstream.POP3.Login = LoginStored
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) || e.Key != "upstream.imap.master_password_file" || !strings.Contains(e.Msg, syscall.EACCES.Error()) {
		t.Errorf("Validate = %v, want permission denied for upstream.imap.master_password_file", err)
	}
}

// TestEveryNumberIsRangeChecked derives, from the schema, one document per
// duration or integer key with a value no setting allows, so that a key
// added without a range check fails here.
func TestEveryNumberIsRangeChecked(t *testing.T) {
	for _, k := range schemaKeys(configType, "", false) {
		var val string
		switch kindName(k.typ) {
		case "integer":
			val = "-1"
		case "string":
			if k.typ != durationType {
				continue
			}
			val = "'0s'"
		default:
			continue
		}
		t.Run(k.key, func(t *testing.T) {
			wantLine(t, parseFails(t, docSetting(k.key, val)), "postern.toml:2:1: "+k.key+": must be ")
		})
	}
}
