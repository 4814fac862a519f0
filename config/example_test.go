package config

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const examplePath = "../config.example.toml"

func readExample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestExampleHoldsEveryDefault decodes the example onto a zero Config, not
// onto Default(): it equals Default() only if the example writes every
// default out, each with its value.
func TestExampleHoldsEveryDefault(t *testing.T) {
	data := readExample(t)
	if _, problems := scan(data, examplePath); len(problems) > 0 {
		t.Fatalf("example: %v", errorsOf(problems))
	}
	var got Config
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&got); err != nil {
		t.Fatalf("decode example: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(&got, want) {
		t.Errorf("example differs from Default():\n got  %+v\n want %+v", got, *want)
	}
}

// TestExampleNamesEveryKey walks the struct's toml tags: each key must be
// set in the example, each with a comment line right above it. Keys of
// array elements, which have no default, must be shown in a comment.
func TestExampleNamesEveryKey(t *testing.T) {
	data := readExample(t)
	src, _ := scan(data, examplePath)
	lines := strings.Split(string(data), "\n")
	for _, k := range schemaKeys(configType, "", false) {
		t.Run(k.key, func(t *testing.T) {
			if k.elem {
				name := k.key[strings.LastIndexByte(k.key, '.')+1:]
				if !regexp.MustCompile(`(?m)^#.*\b` + name + ` = "`).Match(data) {
					t.Errorf("no comment shows %s", k.key)
				}
				return
			}
			i, ok := src.byKey[k.key]
			if !ok {
				t.Fatalf("%s is not in %s", k.key, examplePath)
			}
			line, _ := src.position(src.entries[i].start)
			if line < 2 || !strings.HasPrefix(lines[line-2], "# ") {
				t.Errorf("%s (line %d) has no comment line above it", k.key, line)
			}
		})
	}
}

// TestExampleCertificateCommentParses keeps the commented certificate
// example valid TOML for this schema.
func TestExampleCertificateCommentParses(t *testing.T) {
	m := regexp.MustCompile(`(?m)^#\s+(certificates = \[.*)$`).FindSubmatch(readExample(t))
	if m == nil {
		t.Fatal("no commented certificates example")
	}
	doc := "[tls]\n" + string(m[1]) + "\n"
	if _, problems := scan([]byte(doc), "comment"); len(problems) > 0 {
		t.Fatalf("%s: %v", doc, errorsOf(problems))
	}
	var c Config
	if err := toml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.TLS.Certificates) != 1 || c.TLS.Certificates[0].CertFile == "" || c.TLS.Certificates[0].KeyFile == "" {
		t.Errorf("comment decodes to %+v", c.TLS.Certificates)
	}
}

// TestExampleAsShipped pins what check-config says about the example as
// shipped: exactly the site-specific settings its header lists, none of them
// a problem of the example itself.
func TestExampleAsShipped(t *testing.T) {
	lines := parseFails(t, string(readExample(t)))
	var keys []string
	for _, l := range lines {
		_, rest, _ := strings.Cut(l, ": ")
		key, _, _ := strings.Cut(rest, ": ")
		keys = append(keys, key)
	}
	want := []string{
		"tls.certificates",
		"upstream.imap.master_user", "upstream.imap.master_password_file",
		"upstream.pop3.master_user", "upstream.pop3.master_password_file",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("example problems:\n  %s\nwant keys %v", strings.Join(lines, "\n  "), want)
	}
}

// TestExampleFilledIn fills in the site-specific settings the way an
// operator would and expects a valid configuration.
func TestExampleFilledIn(t *testing.T) {
	doc := string(readExample(t))
	pw := writeFile(t, "master.pw", "secret\n")
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{`master_user = ""`, `master_user = "postern"`, 3},
		{`master_password_file = ""`, `master_password_file = "` + pw + `"`, 4},
		{`self_signed = false`, `self_signed = true`, 1},
	} {
		if got := strings.Count(doc, r.old); got != r.n {
			t.Fatalf("example has %q %d times, want %d", r.old, got, r.n)
		}
		doc = strings.ReplaceAll(doc, r.old, r.new)
	}
	c, err := Parse([]byte(doc), examplePath)
	if err != nil {
		t.Fatalf("filled-in example: %v", err)
	}
	if c.Upstream.POP3.MasterPasswordFile != pw || !c.TLS.SelfSigned {
		t.Errorf("filled-in values not decoded: %+v", c)
	}
}
