package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// storedLogins makes a document valid without any file: the mail upstreams
// use stored credentials and TLS is self-signed.
const storedLogins = `
[tls]
self_signed = true
[upstream.imap]
login = "stored"
[upstream.pop3]
login = "stored"
`

// parseFails parses doc and returns its problems, one formatted line each.
func parseFails(t *testing.T, doc string) []string {
	t.Helper()
	c, err := Parse([]byte(doc), "postern.toml")
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", doc)
	}
	if c != nil {
		t.Errorf("Parse returned a Config along with %v", err)
	}
	var list *Errors
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(list.List) {
		t.Errorf("%d lines for %d problems:\n%v", len(lines), len(list.List), err)
	}
	return lines
}

// wantLine fails unless some line starts with want.
func wantLine(t *testing.T, lines []string, want string) {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, want) {
			return
		}
	}
	t.Errorf("no line starts with\n  %s\ngot:\n  %s", want, strings.Join(lines, "\n  "))
}

func TestParseRejectsDocuments(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"misspelled key", "data_dir = '/srv'\n\n[imap]\nlisten_tsl = ':993'\n",
			"postern.toml:4:1: imap.listen_tsl: unknown key (did you mean listen_tls?)"},
		{"key in the wrong case", "DATA_DIR = '/srv'\n",
			"postern.toml:1:1: DATA_DIR: unknown key (did you mean data_dir?)"},
		{"unknown table", "[imapp]\nlisten_tls = 1\n",
			"postern.toml:1:2: imapp: unknown key (did you mean imap?)"},
		{"unknown far from any key", "[limits]\n  bogus = 1\n",
			"postern.toml:2:3: limits.bogus: unknown key\n"},
		{"unknown dotted key", "upstream.imap.port = 143\n",
			"postern.toml:1:1: upstream.imap.port: unknown key"},
		{"unknown key in inline table", "imap = { listen_tls = ':993', tsl = 1 }\n",
			"postern.toml:1:31: imap.tsl: unknown key"},
		{"unknown key in array of tables", "[[tls.certificates]]\ncert_fle = 'a'\n",
			"postern.toml:2:1: tls.certificates[0].cert_fle: unknown key (did you mean cert_file?)"},
		{"quoted key with a newline", "\"a\\nb\" = 1\n",
			`postern.toml:1:1: "a\nb": unknown key`},
		{"string for integer", "[limits]\nmax_connections = 'many'\n",
			"postern.toml:2:1: limits.max_connections: expected an integer, got a string"},
		{"float for integer", "[limits]\nmax_bad_commands = 5.0\n",
			"postern.toml:2:1: limits.max_bad_commands: expected an integer, got a float"},
		{"integer for string", "[imap]\nlisten_tls = 993\n",
			"postern.toml:2:1: imap.listen_tls: expected a string, got an integer"},
		{"integer for duration", "[imap]\nidle_timeout = 31\n",
			`postern.toml:2:1: imap.idle_timeout: expected a duration such as "30s", "72h" or "90d", got an integer`},
		{"string for boolean", "[upstream.imap]\nsend_id = 'yes'\n",
			"postern.toml:2:1: upstream.imap.send_id: expected true or false, got a string"},
		{"date for string", "data_dir = 2024-01-01\n",
			"postern.toml:1:1: data_dir: expected a string, got a date or time"},
		{"table for string", "[data_dir]\n",
			"postern.toml:1:2: data_dir: expected a string, got a table"},
		{"string for table", "log = 'debug'\n",
			"postern.toml:1:1: log: expected a table, got a string"},
		{"array of tables for table", "[[log]]\n",
			"postern.toml:1:3: log: expected a table, got an array of tables"},
		{"table for array of tables", "[tls.certificates]\n",
			"postern.toml:1:2: tls.certificates: expected an array of tables, got a table"},
		{"string for array of tables", "[tls]\ncertificates = 'a.pem'\n",
			"postern.toml:2:1: tls.certificates: expected an array of tables, got a string"},
		{"type error in second element", "[[tls.certificates]]\ncert_file = 'a'\n[[tls.certificates]]\ncert_file = 5\n",
			"postern.toml:4:1: tls.certificates[1].cert_file: expected a string, got an integer"},
		{"type error in inline element", "[tls]\ncertificates = [{ cert_file = 'a' }, { key_file = true }]\n",
			"postern.toml:2:40: tls.certificates[1].key_file: expected a string, got a boolean"},
		{"bad duration", "[limits]\nsource_delay = '2 seconds'\n",
			`postern.toml:2:1: limits.source_delay: invalid duration "2 seconds"`},
		{"negative days", "[policy]\nadmin_code_ttl = '-3d'\n",
			`postern.toml:2:1: policy.admin_code_ttl: invalid duration "-3d": days must be`},
		{"integer too large", "[limits]\nmax_connections = 99999999999999999999\n",
			"postern.toml:2:1: limits.max_connections: decimal number is too large"},
		{"duplicate key", "data_dir = '/a'\ndata_dir = '/b'\n",
			"postern.toml:2:1: data_dir: key data_dir is already defined"},
		{"syntax error", "[log]\nlevel = 'info'\n[imap\n",
			"postern.toml:3:6: expected ']' to close table name"},
		{"missing value", "[log]\nlevel =\n",
			"postern.toml:2:8: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := parseFails(t, tt.doc)
			want := strings.TrimSuffix(tt.want, "\n")
			if strings.HasSuffix(tt.want, "\n") { // the line must end there
				for i := range lines {
					lines[i] += "\n"
				}
				want = tt.want
			}
			wantLine(t, lines, want)
		})
	}
}

// TestParseReportsEveryKeyProblem checks that problems are collected, not
// stopped at the first, and come out in file order.
func TestParseReportsEveryKeyProblem(t *testing.T) {
	doc := "[imap]\nlisten_tsl = ':1'\nidle_timeout = 5\n[pop3]\nlisten = ':2'\n" + storedLogins
	lines := parseFails(t, doc)
	want := []string{
		"postern.toml:2:1: imap.listen_tsl: unknown key (did you mean listen_tls?)",
		`postern.toml:3:1: imap.idle_timeout: expected a duration such as "30s", "72h" or "90d", got an integer`,
		"postern.toml:5:1: pop3.listen: unknown key",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestEveryLeafRejectsWrongType derives one wrongly typed document per key
// of the schema, so a key added later is covered without editing the test.
func TestEveryLeafRejectsWrongType(t *testing.T) {
	wrong := map[string]string{"string": "1", "integer": "'1'", "bool": "'true'"}
	for _, k := range schemaKeys(configType, "", false) {
		if k.elem {
			continue
		}
		t.Run(k.key, func(t *testing.T) {
			val, ok := wrong[kindName(k.typ)]
			if !ok {
				val = "'not an array'"
			}
			lines := parseFails(t, docSetting(k.key, val))
			wantLine(t, lines, "postern.toml:")
			if !strings.Contains(lines[0], " "+k.key+": expected ") {
				t.Errorf("first problem %q does not name %s as mistyped", lines[0], k.key)
			}
		})
	}
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType || t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Bool:
		return "bool"
	default:
		return "other"
	}
}

func TestParseAcceptsDocuments(t *testing.T) {
	pw := writeFile(t, "master.pw", "secret\n")
	cert, key := writeFile(t, "cert.pem", "c"), writeFile(t, "key.pem", "k")
	tests := []struct {
		name string
		doc  string
		want func(c *Config)
	}{
		{"defaults apart from logins", storedLogins, func(c *Config) {
			c.TLS.SelfSigned = true
			c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
		}},
		{"master user", "[tls]\nself_signed = true\n[upstream.imap]\nmaster_user = 'proxy'\nmaster_password_file = '" + pw +
			"'\n[upstream.pop3]\nmaster_user = 'proxy'\nmaster_password_file = '" + pw + "'\n", func(c *Config) {
			c.TLS.SelfSigned = true
			c.Upstream.IMAP.MasterUser, c.Upstream.IMAP.MasterPasswordFile = "proxy", pw
			c.Upstream.POP3.MasterUser, c.Upstream.POP3.MasterPasswordFile = "proxy", pw
		}},
		{"days and compound durations", storedLogins + "[policy]\nadmin_code_ttl = '7d'\nreauth_window = '2m30s'\n", func(c *Config) {
			c.TLS.SelfSigned = true
			c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
			c.Policy.AdminCodeTTL = Duration{7 * 24 * time.Hour}
			c.Policy.ReauthWindow = Duration{150 * time.Second}
		}},
		{"shortest re-verification window", storedLogins + "[policy]\nreauth_window = '1s'\n", func(c *Config) {
			c.TLS.SelfSigned = true
			c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
			c.Policy.ReauthWindow = Duration{time.Second}
		}},
		{"certificates as array of tables", "[[tls.certificates]]\ncert_file = '" + cert + "'\nkey_file = '" + key +
			"'\n[[tls.certificates]]\ncert_file = '" + key + "'\nkey_file = '" + cert + "'\n" +
			"[upstream.imap]\nlogin = 'stored'\n[upstream.pop3]\nlogin = 'stored'\n", func(c *Config) {
			c.TLS.Certificates = []Certificate{{cert, key}, {key, cert}}
			c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
		}},
		{"inline tables and dotted keys", "tls = { certificates = [{ cert_file = '" + cert + "', key_file = '" + key + "' }] }\n" +
			"upstream.imap.login = 'stored'\nupstream.pop3 = { login = 'stored', xclient = true }\n", func(c *Config) {
			c.TLS.Certificates = []Certificate{{cert, key}}
			c.Upstream.IMAP.Login, c.Upstream.POP3.Login = LoginStored, LoginStored
			c.Upstream.POP3.XClient = true
		}},
		{"dav only needs no mail upstream", "[tls]\nself_signed = true\n[imap]\nlisten_tls = ''\nlisten_starttls = ''\n" +
			"[pop3]\nlisten_tls = ''\nlisten_stls = ''\n[dav]\nlisten = ':8443'\n[upstream.dav]\nurl = 'http://127.0.0.1:5232/'\n", func(c *Config) {
			c.TLS.SelfSigned = true
			c.IMAP.ListenTLS, c.IMAP.ListenSTARTTLS, c.POP3.ListenTLS, c.POP3.ListenSTLS = "", "", "", ""
			c.DAV.Listen = ":8443"
			c.Upstream.DAV.URL = "http://127.0.0.1:5232/"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.doc), "postern.toml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			tt.want(want)
			got.src = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	good := writeFile(t, "good.toml", storedLogins)
	bad := writeFile(t, "bad.toml", "[log]\nlevel = 'loud'\n")
	tests := []struct {
		name, path, wantErr string
	}{
		{"valid file", good, ""},
		{"problems name the file", bad, bad + `:2:1: log.level: must be one of "debug", "info", "warn", "error"; got "loud"`},
		{"missing file", filepath.Join(t.TempDir(), "none.toml"), "read config: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(tt.path)
			switch {
			case tt.wantErr == "" && (err != nil || c == nil):
				t.Fatalf("load = %v, %v", c, err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("load error = %v, want prefix %q", err, tt.wantErr)
			case tt.wantErr != "" && c != nil:
				t.Errorf("load returned a Config with an error")
			}
		})
	}
	if _, err := load(filepath.Join(t.TempDir(), "none.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("load of a missing file: %v does not wrap os.ErrNotExist", err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadDecodesStrictlyWithoutValidating(t *testing.T) {
	dir := t.TempDir()
	incomplete := filepath.Join(dir, "incomplete.toml")
	os.WriteFile(incomplete, []byte("data_dir = \"/srv/postern\"\n"), 0o600)
	c, err := Read(incomplete)
	if err != nil || c.DataDir != "/srv/postern" || c.Limits.UserFailureBudget != 100 {
		t.Fatalf("Read: %v, %+v", err, c)
	}
	if _, err := load(incomplete); err == nil {
		t.Fatal("load accepted a configuration without certificates or master user")
	}
	misspelled := filepath.Join(dir, "misspelled.toml")
	os.WriteFile(misspelled, []byte("data_dir = \"/x\"\ndata_dri = \"/y\"\n"), 0o600)
	if _, err := Read(misspelled); err == nil || !strings.Contains(err.Error(), "misspelled.toml:2:1: data_dri") {
		t.Fatalf("Read of a misspelled key: %v", err)
	}
}
