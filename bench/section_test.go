package bench

import (
	"os"
	"strings"
)

// A section is a part of RESULTS.md between two markers. One test writes
// it; the other reports carry it over when they rewrite the file, so each
// set of figures can be measured apart.
type section struct{ begin, end string }

var (
	revocationSection = section{"<!-- revocation figures: TestRevocation -->", "<!-- end of revocation figures -->"}
	davSection        = section{"<!-- dav:begin -->", "<!-- dav:end -->"}
)

// of returns the section in doc, markers included and ending in a newline,
// or "" when doc has none.
func (s section) of(doc string) string {
	i, j := strings.Index(doc, s.begin), strings.Index(doc, s.end)
	if i < 0 || j < i {
		return ""
	}
	return doc[i:j+len(s.end)] + "\n"
}

// put returns doc with text in place of the section, or with text added at
// the end when doc has none.
func (s section) put(doc, text string) string {
	if i, j := strings.Index(doc, s.begin), strings.Index(doc, s.end); i >= 0 && j > i {
		return doc[:i] + text + strings.TrimPrefix(doc[j+len(s.end):], "\n")
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + text
}

// write puts text into the file at path, keeping everything else in it.
func (s section) write(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, []byte(s.put(string(old), text)), 0o644)
}
