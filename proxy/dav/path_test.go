package dav

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// requestURL parses a request target as net/http's server does.
func requestURL(t testing.TB, target string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	return u
}

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		target, want string // want "" for refused
	}{
		{"/", "/"},
		{"/alice/", "/alice/"},
		{"/alice/calendar/e1.ics", "/alice/calendar/e1.ics"},
		{"/alice/calendar/e1.ics?export", "/alice/calendar/e1.ics"},
		{"/alice/calendar/%41.ics", "/alice/calendar/A.ics"},
		{"/alice/calendar/a%20b.ics", "/alice/calendar/a b.ics"},
		{"/alice/calendar/%C3%A9t%C3%A9.ics", "/alice/calendar/été.ics"},
		{"/alice/calendar/a@b+c,d.ics", "/alice/calendar/a@b+c,d.ics"},
		{"/alice/calendar/.hidden", "/alice/calendar/.hidden"},
		{"/alice/calendar/e1..ics", "/alice/calendar/e1..ics"},
		{"/alice/calendar/...", "/alice/calendar/..."},
		{"/.well-known/caldav", "/.well-known/caldav"},
		{"https://evil.example/alice/contacts/", "/alice/contacts/"}, // absolute form: its path
		{"/alice/calendar/%23x.ics", "/alice/calendar/#x.ics"},
		{"/alice/calendar/%3Fx.ics", "/alice/calendar/?x.ics"},

		{"*", ""},
		{"https://evil.example", ""},
		{"http:alice/contacts/", ""}, // opaque
		{"/alice/calendar/../contacts/", ""},
		{"/alice/calendar/..", ""},
		{"/alice/calendar/./e1.ics", ""},
		{"/alice/.", ""},
		{"/./alice/", ""},
		{"/alice/calendar/%2e%2e/contacts/", ""},
		{"/alice/calendar/%2E%2e/contacts/", ""},
		{"/alice/calendar/.%2E/contacts/", ""},
		{"/alice/calendar/e1%2eics", ""},
		{"/alice/calendar%2f..%2fcontacts/", ""},
		{"/alice%2Fcontacts/", ""},
		{"/alice%2fcontacts/", ""},
		{"//alice/contacts/", ""},
		{"/alice//contacts/", ""},
		{"/alice/contacts//", ""},
		{"/alice/calendar/..\\contacts/", ""},
		{"/alice\\contacts/", ""},
		{"/alice/calendar/..%5ccontacts/", ""},
		{"/alice/calendar/..%5Ccontacts/", ""},
		{"/alice/calendar/%252e%252e/contacts/", ""},
		{"/alice/calendar/%25/", ""},
		{"/alice/calendar/..;/contacts/", ""},
		{"/alice/calendar;x=1/e1.ics", ""},
		{"/alice/calendar/%3B/", ""},
		{"/alice/calendar/%c0%ae%c0%ae/contacts/", ""},
		{"/alice/calendar/%ff.ics", ""},
		{"/alice/calendar/%00/../contacts/", ""},
		{"/alice/calendar/%00.ics", ""},
		{"/alice/calendar/%0a.ics", ""},
		{"/alice/calendar/%7f.ics", ""},
		{"/alice/calendar/%c2%85.ics", ""}, // NEL, a C1 control
	}
	for _, tt := range tests {
		got, err := canonicalPath(requestURL(t, tt.target))
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%q: accepted as %q, want refused", tt.target, got)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("%q: %q %v, want %q", tt.target, got, err, tt.want)
		}
	}
}

// upstreamReadings are ways servers resolve a path they received: each
// takes the request target postern sends and returns the path acted on.
var upstreamReadings = map[string]func(string) string{
	// Radicale behind wsgiref: PATH_INFO decoded once, then normpath
	// (dot segments, empty segments), keeping a trailing "/".
	"decode, normalise": func(target string) string { return normalise(unescape(target)) },
	// Servers that read "\" as "/" (IIS, some Java servers).
	"backslash": func(target string) string { return normalise(strings.ReplaceAll(unescape(target), `\`, "/")) },
	// Servers (or a second proxy) that decode twice.
	"decode twice": func(target string) string { return normalise(unescape(unescape(target))) },
	// Servlet containers that strip ";" parameters from each segment.
	"strip parameters": func(target string) string {
		segs := strings.Split(unescape(target), "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		return normalise(strings.Join(segs, "/"))
	},
	// Servers that normalise the path as sent, then decode.
	"normalise, decode": func(target string) string { return unescape(normalise(target)) },
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func normalise(p string) string {
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// FuzzCanonicalPath: a path the check accepts is its own cleaned, decoded
// form; what postern sends upstream for it decodes back to it; and every
// way of reading that target upstream lands under the same scope.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/alice/calendar/e1.ics", "/alice/calendar/../contacts/c1.vcf", "/alice/calendar/%2e%2e/contacts/",
		"/alice/calendar%2fcontacts/", "//alice/contacts/", `/alice/calendar/..\contacts/`, "/alice/calendar/%252e%252e/contacts/",
		"/alice/calendar/..;/contacts/", "/alice/calendar/%c0%ae/", "/a/%00/", "https://h/alice/contacts/", "*", "/alice/contacts?x#y"} {
		f.Add(s)
	}
	h, err := New(Config{Upstream: &url.URL{Scheme: "http", Host: "x"},
		CalDAVPrefixes: []string{"/*/calendar/"}, CardDAVPrefixes: []string{"/*/contacts/"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		p, err := canonicalPath(u)
		if err != nil {
			return
		}
		if p != u.Path || normalise(p) != p {
			t.Fatalf("%q accepted as %q: not its own cleaned, decoded form", target, p)
		}
		sent := (&url.URL{Path: p}).EscapedPath() // what rewrite sends
		if unescape(sent) != p {
			t.Fatalf("%q: sent upstream as %q, which decodes to %q", target, sent, unescape(sent))
		}
		want := h.protocolOf(p)
		for name, read := range upstreamReadings {
			if got := read(sent); h.protocolOf(got) != want || got != p {
				t.Errorf("%q: a server that reads %q by %s acts on %q (%s), postern chose %s for %q",
					target, sent, name, got, h.protocolOf(got), want, p)
			}
		}
	})
}
