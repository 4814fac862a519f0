package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// TestMain runs the suite, then W6 over everything it logged: the end-to-end
// tests run in parallel, so only here have they all finished.
func TestMain(m *testing.M) {
	code := m.Run()
	if w6 := checkW6(); w6 != "" {
		fmt.Print(w6)
		if strings.HasPrefix(w6, "--- FAIL") && code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// w6Secret is a secret a test's clients or gateway used, and who used it.
type w6Secret struct {
	what   string // for the report: never the secret itself
	user   string
	secret string
	master string // set for the master credential: the login it acts as
}

// w6Record is one gateway's logs and audit log and the secrets used on it.
type w6Record struct {
	test, logs, audit string
	secrets           []w6Secret
}

// w6Records collects a record per gateway the end-to-end tests start.
type w6Records struct {
	mu  sync.Mutex
	all []w6Record
}

// w6Seen is what the suite's gateways logged, read by TestMain at the end.
var w6Seen w6Records

func (r *w6Records) add(rec w6Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, rec)
}

// auditText is the gateway's audit log as JSON, read while its store is
// still open.
func (e *e2e) auditText() string {
	e.g.store.FlushAudit()
	evs, err := e.g.store.AuditTail(context.Background(), 1<<20)
	if err != nil {
		return "audit unreadable: " + err.Error()
	}
	data, _ := json.Marshal(evs)
	return string(data)
}

// secretsUsed lists every secret a client or the gateway used (app
// passwords are in extraSecrets as they are made).
func (e *e2e) secretsUsed() []w6Secret {
	var out []w6Secret
	for _, a := range e.accounts {
		out = append(out,
			w6Secret{"account password of " + a.name, a.name, a.password, ""},
			w6Secret{"TOTP secret of " + a.name, a.name, a.totpSecret, ""},
			w6Secret{"master password acting as " + a.name, e.peer.MasterUser, e.peer.MasterPassword, a.name})
	}
	return append(out, e.extraSecrets...)
}

// w6Forms are the ways a secret could reach a log: raw, grouped in fours
// as app passwords are shown, base64, and inside a SASL PLAIN message
// (RFC 4616: authzid NUL authcid NUL password) as clients and the proxy send it,
// and as HTTP Basic credentials (user:password) as DAV clients and postern send them.
func w6Forms(s w6Secret) map[string]string {
	b64 := func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }
	forms := map[string]string{
		"raw":                 s.secret,
		"grouped in fours":    authstore.FormatGrouped(s.secret, 4),
		"base64":              b64(s.secret),
		"unpadded base64":     base64.RawStdEncoding.EncodeToString([]byte(s.secret)),
		"SASL PLAIN base64":   b64("\x00" + s.user + "\x00" + s.secret),
		"SASL PLAIN, authzid": b64(s.user + "\x00" + s.user + "\x00" + s.secret),
		"HTTP Basic":          b64(s.user + ":" + s.secret),
	}
	if s.master != "" {
		forms["SASL PLAIN base64"] = b64(s.master + "\x00" + s.user + "\x00" + s.secret)
		delete(forms, "SASL PLAIN, authzid")
	}
	return forms
}

// checkW6 searches every recorded gateway log and audit log for every
// secret used in any test, in every form (W6). It returns a
// report, "" when no gateway ran.
func checkW6() string {
	w6Seen.mu.Lock()
	defer w6Seen.mu.Unlock()
	if len(w6Seen.all) == 0 {
		return ""
	}
	var secrets []w6Secret
	for _, rec := range w6Seen.all {
		for _, s := range rec.secrets {
			if s.secret != "" {
				secrets = append(secrets, s)
			}
		}
	}
	var leaks []string
	for _, rec := range w6Seen.all {
		for _, s := range secrets {
			for form, v := range w6Forms(s) {
				for name, text := range map[string]string{"gateway log": rec.logs, "audit log": rec.audit} {
					if strings.Contains(text, v) {
						leaks = append(leaks, fmt.Sprintf("    the %s of %s holds the %s, %s", name, rec.test, s.what, form))
					}
				}
			}
		}
	}
	if len(leaks) > 0 {
		return "--- FAIL: W6 (a secret reached a log)\n" + strings.Join(leaks, "\n") + "\n"
	}
	if !testing.Verbose() {
		return ""
	}
	return fmt.Sprintf("--- PASS: W6 (no secret in %d gateway logs and audit logs: %d secrets, each in up to 7 forms)\n",
		len(w6Seen.all), len(secrets))
}
