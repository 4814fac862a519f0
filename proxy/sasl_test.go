package proxy

import (
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

func TestDecodeSASL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")), "\x00alice\x00pw", true},
		{"", "", true},
		{"YWxpY2U", "", false},      // no padding
		{"YWxpY2V=", "", false},     // non-zero padding bits
		{"YWxp\r\nY2U=", "", false}, // line breaks inside
		{"YWxp Y2U=", "", false},
		{"YW-pY2U=", "", false}, // URL alphabet
	} {
		got, err := DecodeSASL(tc.in)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("DecodeSASL(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParsePlain(t *testing.T) {
	for _, tc := range []struct {
		in                string
		authzid, user, pw string
		ok                bool
	}{
		{"\x00alice\x00pw", "", "alice", "pw", true},
		{"alice\x00alice\x00pw", "alice", "alice", "pw", true},
		{"\x00alice\x00p\x00w", "", "", "", false},
		{"alice\x00pw", "", "", "", false},
		{"", "", "", "", false},
	} {
		z, u, p, err := ParsePlain([]byte(tc.in))
		if (err == nil) != tc.ok || z != tc.authzid || u != tc.user || p != tc.pw {
			t.Errorf("ParsePlain(%q) = %q %q %q %v", tc.in, z, u, p, err)
		}
	}
	if _, _, _, err := ParsePlain(nil); err == nil {
		t.Error("ParsePlain(nil) accepted")
	}
}

// scriptedDialogue answers challenges from lines and records the texts.
func scriptedDialogue(lines ...string) (SASLDialogue, *[]string) {
	var asked []string
	return SASLDialogue{Challenge: func(text string) ([]byte, error) {
		asked = append(asked, text)
		if len(lines) == 0 {
			return nil, io.EOF
		}
		line := lines[0]
		lines = lines[1:]
		return []byte(line), nil
	}}, &asked
}

func TestSASLDialogue(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name       string
		mech, ir   string
		hasIR      bool
		lines      []string
		user, pass string
		asked      []string
		err        error
	}{
		{name: "PLAIN initial response", mech: "plain", ir: b64("\x00alice\x00secret"), hasIR: true, user: "alice", pass: "secret"},
		{name: "PLAIN authzid = user", mech: "PLAIN", ir: b64("alice\x00alice\x00a b c"), hasIR: true, user: "alice", pass: "a b c"},
		{name: "PLAIN after challenge", mech: "PLAIN", lines: []string{b64("\x00alice\x00secret")}, user: "alice", pass: "secret", asked: []string{""}},
		{name: "PLAIN authzid of another", mech: "PLAIN", ir: b64("bob\x00alice\x00secret"), hasIR: true, err: authstore.ErrUnauthorized},
		{name: "PLAIN empty response", mech: "PLAIN", ir: "=", hasIR: true, err: authstore.ErrUnauthorized},
		{name: "PLAIN one NUL", mech: "PLAIN", ir: b64("alice\x00secret"), hasIR: true, err: authstore.ErrUnauthorized},
		{name: "PLAIN three NULs", mech: "PLAIN", ir: b64("\x00alice\x00sec\x00ret"), hasIR: true, err: authstore.ErrUnauthorized},
		{name: "PLAIN CR in user", mech: "PLAIN", ir: b64("\x00ali\rce\x00secret"), hasIR: true, err: authstore.ErrUnauthorized},
		{name: "PLAIN not base64", mech: "PLAIN", ir: "alice:secret", hasIR: true, err: errSASLEncoding},
		{name: "PLAIN bad padding", mech: "PLAIN", ir: "YWxpY2U", hasIR: true, err: errSASLEncoding},
		{name: "PLAIN canceled", mech: "PLAIN", lines: []string{"*"}, asked: []string{""}, err: ErrSASLCanceled},
		{name: "PLAIN star as initial response", mech: "PLAIN", ir: "*", hasIR: true, err: errSASLEncoding},
		{name: "LOGIN", mech: "LOGIN", lines: []string{b64("alice"), b64("secret")}, user: "alice", pass: "secret", asked: []string{"VXNlcm5hbWU6", "UGFzc3dvcmQ6"}},
		{name: "LOGIN initial response", mech: "login", ir: b64("alice"), hasIR: true, lines: []string{b64("secret")}, user: "alice", pass: "secret", asked: []string{"UGFzc3dvcmQ6"}},
		{name: "LOGIN bad user encoding asks nothing more", mech: "LOGIN", ir: "!!", hasIR: true, err: errSASLEncoding},
		{name: "LOGIN canceled at password", mech: "LOGIN", lines: []string{b64("alice"), "*"}, asked: []string{"VXNlcm5hbWU6", "UGFzc3dvcmQ6"}, err: ErrSASLCanceled},
		{name: "LOGIN empty password", mech: "LOGIN", ir: b64("alice"), hasIR: true, lines: []string{"="}, asked: []string{"UGFzc3dvcmQ6"}, err: authstore.ErrUnauthorized},
		{name: "LOGIN client leaves", mech: "LOGIN", asked: []string{"VXNlcm5hbWU6"}, err: io.EOF},
		{name: "other mechanism", mech: "CRAM-MD5", err: ErrSASLMechanism},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, asked := scriptedDialogue(tc.lines...)
			user, pass, err := d.Run(tc.mech, tc.ir, tc.hasIR)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tc.err)
			}
			if tc.err == nil && (user != tc.user || pass != tc.pass) {
				t.Errorf("credential = %q %q, want %q %q", user, pass, tc.user, tc.pass)
			}
			if !slices.Equal(*asked, tc.asked) {
				t.Errorf("challenges %q, want %q", *asked, tc.asked)
			}
		})
	}
}

// FuzzSASLDialogue: a dialogue never panics, returns only its own errors,
// and a PLAIN credential it accepts is exactly the message's authcid and
// password, both usable (P4).
func FuzzSASLDialogue(f *testing.F) {
	for _, s := range []string{
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), "=", "", "*", "!!!", "YWxpY2U",
		base64.StdEncoding.EncodeToString([]byte("a\x00b\x00c\x00d")),
	} {
		f.Add("PLAIN", s, true, s)
		f.Add("LOGIN", s, false, s)
	}
	f.Fuzz(func(t *testing.T, mech, ir string, hasIR bool, line string) {
		d, _ := scriptedDialogue(line, line)
		user, pass, err := d.Run(mech, ir, hasIR)
		if err != nil {
			for _, known := range []error{ErrSASLMechanism, ErrSASLCanceled, errSASLEncoding, authstore.ErrUnauthorized, io.EOF} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		if !ValidCredential(user) || !ValidCredential(pass) {
			t.Fatalf("accepted %q %q", user, pass)
		}
		if !strings.EqualFold(mech, "PLAIN") {
			return
		}
		resp := ir
		if !hasIR {
			resp = line
		}
		msg, _ := DecodeSASL(resp)
		authzid, _, _ := strings.Cut(string(msg), "\x00")
		if string(msg) != authzid+"\x00"+user+"\x00"+pass || (authzid != "" && authzid != user) {
			t.Fatalf("PLAIN %q gave %q %q", msg, user, pass)
		}
	})
}
