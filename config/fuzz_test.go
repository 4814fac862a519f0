package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; a failure is always a non-empty *Errors
// printing exactly one line per problem; a success validates again.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	f.Add([]byte(storedLogins))
	f.Add([]byte("[[tls.certificates]]\ncert_file = 'a'\n[[tls.certificates]]\nkey_file = 5\n"))
	f.Add([]byte("tls = { certificates = [{ cert_file = 'a' }, {}] }\nupstream.imap.login = 'stored'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err == nil {
			if c == nil {
				t.Fatal("nil Config without an error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("parsed Config fails Validate: %v", err)
			}
			return
		}
		if c != nil {
			t.Fatal("Config returned with an error")
		}
		var list *Errors
		if !errors.As(err, &list) || len(list.List) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
		if n := strings.Count(err.Error(), "\n") + 1; n != len(list.List) {
			t.Fatalf("%d lines for %d problems: %q", n, len(list.List), err.Error())
		}
		for _, e := range list.List {
			if e.File != "fuzz.toml" {
				t.Fatalf("problem without the file name: %+v", e)
			}
		}
	})
}
