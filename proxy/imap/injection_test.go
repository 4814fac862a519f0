package imap_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
)

// TestP4_NoInjectionUpstream: CR, LF and NUL smuggled in a user name (a
// LOGIN literal, a non-synchronizing literal, SASL PLAIN) or in the stored
// upstream password never give the upstream a second command: through a
// real session, everything a recording upstream receives parses as the
// proxy's own login commands and nothing else.
func TestP4_NoInjectionUpstream(t *testing.T) {
	const smuggled = "alice\r\nx DELETE INBOX"
	master := imap.Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "master", MasterPassword: "secret"}}
	stored := func(pw string) imap.Config {
		return imap.Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: func(context.Context, string) (string, error) { return pw, nil }}}
	}
	type step struct{ send, want string } // want: the prefix of the answer
	tests := []struct {
		name  string
		cfg   imap.Config
		steps []step
	}{
		{"LOGIN literal user", master, []step{
			{"a LOGIN {" + strconv.Itoa(len(smuggled)) + "}\r\n", "+ "},
			{smuggled + " secret\r\n", "a NO "},
		}},
		{"LOGIN literal user, stored password", stored("pw"), []step{
			{"a LOGIN {" + strconv.Itoa(len(smuggled)) + "}\r\n", "+ "},
			{smuggled + " secret\r\n", "a NO "},
		}},
		{"LOGIN non-synchronizing literal user", master, []step{
			{"a LOGIN {" + strconv.Itoa(len(smuggled)) + "+}\r\n" + smuggled + " secret\r\n", "a NO "},
		}},
		{"AUTHENTICATE PLAIN user", master, []step{
			{"a AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+smuggled+"\x00secret")) + "\r\n", "a NO "},
		}},
		{"stored upstream password", stored("pw\r\nx DELETE INBOX"), []step{
			{"a LOGIN alice secret\r\n", "a NO [UNAVAILABLE]"},
		}},
		{"stored upstream password with NUL", stored("pw\x00x"), []step{
			{"a LOGIN alice secret\r\n", "a NO [UNAVAILABLE]"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peer := testpeer.StartFault(t, testpeer.FaultRefuseLogin)
			front := fronttest.Start(t, proxy.ServerConfig{
				Protocol: imap.New(tc.cfg), Auth: fronttest.GrantAll{}, ImplicitTLS: true,
				Upstream: proxy.Upstream{Address: peer.Addr, Security: proxy.None, DialTimeout: 5 * time.Second},
				Limits:   proxy.Limits{LoginTimeout: 5 * time.Second, PreAuthTimeout: 30 * time.Second},
			})
			c := front.Dial(t)
			c.Expect("* OK ")
			for _, st := range tc.steps {
				c.Write(st.send)
				c.Expect(st.want)
			}
			c.Close()
			front.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := peer.Wait(ctx, 0); err != nil {
				t.Fatal(err)
			}
			for i, got := range peer.Received() {
				for _, cmd := range commands(got) {
					tag, verb, _ := strings.Cut(cmd, " ")
					verb, _, _ = strings.Cut(verb, " ")
					if !strings.HasPrefix(tag, "P") || !allowedUpstream[strings.ToUpper(verb)] {
						t.Errorf("connection %d: the upstream received a command the proxy does not send: %q", i, cmd)
					}
				}
			}
		})
	}
}

// allowedUpstream are the commands a login sends upstream.
var allowedUpstream = map[string]bool{"CAPABILITY": true, "STARTTLS": true, "ID": true, "LOGIN": true, "AUTHENTICATE": true}

// commands splits what an upstream received into the first lines of its
// commands, skipping literals ({n} and {n+}) and the SASL response line
// that follows an AUTHENTICATE without an initial response.
func commands(b []byte) []string {
	var out []string
	expectResponse := false
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return append(out, string(b)) // an unfinished line is a command too
		}
		line := string(b[:i])
		b = b[i+2:]
		if expectResponse {
			expectResponse = false
			continue
		}
		out = append(out, line)
		for {
			open := strings.LastIndexByte(line, '{')
			if !strings.HasSuffix(line, "}") || open < 0 {
				break
			}
			n, err := strconv.Atoi(strings.TrimSuffix(line[open+1:len(line)-1], "+"))
			if err != nil || n > len(b) {
				return out
			}
			rest := b[n:]
			j := bytes.Index(rest, []byte("\r\n"))
			if j < 0 {
				return out
			}
			line, b = string(rest[:j]), rest[j+2:]
		}
		f := strings.Fields(out[len(out)-1])
		expectResponse = len(f) == 3 && strings.EqualFold(f[1], "AUTHENTICATE")
	}
	return out
}
