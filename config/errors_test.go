package config

import (
	"errors"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		e    Error
		want string
	}{
		{"everything", Error{File: "p.toml", Line: 7, Column: 3, Key: "imap.listen_tls", Msg: "unknown key"},
			"p.toml:7:3: imap.listen_tls: unknown key"},
		{"defaulted key", Error{File: "p.toml", Key: "upstream.dav.url", Msg: "required"},
			"p.toml: upstream.dav.url: required"},
		{"no key", Error{File: "p.toml", Line: 2, Column: 1, Msg: "expected ']'"},
			"p.toml:2:1: expected ']'"},
		{"not from a file", Error{Key: "log.level", Msg: "bad"}, "log.level: bad"},
		{"controls escaped", Error{File: "a\nb", Key: "k\r", Msg: "m\x00\u2028"},
			`a\x0ab: k\x0d: m\x00\u2028`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsOrderAndUnwrap(t *testing.T) {
	if err := errorsOf(nil); err != nil {
		t.Fatalf("errorsOf(nil) = %#v, want a nil error", err)
	}
	err := errorsOf([]Error{
		{File: "f", Key: "defaulted", Msg: "a"},
		{File: "f", Line: 9, Column: 1, Key: "late", Msg: "b"},
		{File: "f", Line: 2, Column: 5, Key: "right", Msg: "c"},
		{File: "f", Line: 2, Column: 1, Key: "left", Msg: "d"},
	})
	want := "f:2:1: left: d\nf:2:5: right: c\nf:9:1: late: b\nf: defaulted: a"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "left" {
		t.Errorf("errors.As found %+v, want the first problem", e)
	}
}
