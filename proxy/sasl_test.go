package proxy

import (
	"encoding/base64"
	"testing"
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
