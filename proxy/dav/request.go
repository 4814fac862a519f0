package dav

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// clientAddr is the socket's peer, or the client a trusted proxy names.
func (h *Handler) clientAddr(r *http.Request) netip.AddrPort {
	return proxy.ClientAddr(r, h.cfg.TrustedProxies)
}

// protocolOf picks CalDAV or CardDAV by the longest matching prefix;
// authstore.DAV (either scope) when none matches.
func (h *Handler) protocolOf(path string) authstore.Protocol {
	segs := segments(path)
	best, proto := -1, authstore.DAV
	for _, p := range h.prefixes {
		if len(p.segs) > best && matchSegments(p.segs, segs) {
			best, proto = len(p.segs), p.proto
		}
	}
	return proto
}

func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func matchSegments(prefix, segs []string) bool {
	if len(prefix) > len(segs) {
		return false
	}
	for i, p := range prefix {
		if p != "*" && p != segs[i] {
			return false
		}
	}
	return true
}

// statusWriter remembers the status code for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// FlushError keeps the reverse proxy from flushing after every read of a
// chunked answer (it does for every answer without a length, and DAV
// multistatus answers have none): the server's buffer still sends each
// few kilobytes as they come and the rest when the handler returns, so
// answers stream, at one write for a small answer instead of two.
func (w *statusWriter) FlushError() error { return nil }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return make([]byte, 32<<10) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().([]byte) }

// Put boxes the slice header (24 bytes) into the pool; httputil.BufferPool
// hands over a slice, not a pointer, and the 32 KiB behind it is what the
// pool saves.
//
//lint:ignore SA6002 the header is small; the buffer it points to is reused
func (b *bufferPool) Put(x []byte) { b.p.Put(x) }

// forwardedHeaders name the client to an upstream, or carry a credential:
// only postern may set them, in any spelling.
var forwardedHeaders = []string{"Authorization", "Proxy-Authorization", "Forwarded",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// dropSpellings removes from h every header that a gateway interface
// (CGI, WSGI, PHP's $_SERVER) reads as one of names: those fold case and
// read "_" as "-", and join repeated headers (Radicale behind wsgiref
// saw "X_Remote_User: bob" next to postern's X-Remote-User as the user
// "alice,bob"). A name ending in "*" stands for every name it begins
// (SOGo takes every X-Webobjects- header as its proxy's word). It
// allocates nothing.
func dropSpellings(h http.Header, names []string) {
	for k := range h {
		for _, n := range names {
			if sameHeaderName(k, n) {
				delete(h, k)
				break
			}
		}
	}
}

// sameHeaderName compares header name a with b as a gateway interface
// does; b may end in "*", which matches any rest of a.
func sameHeaderName(a, b string) bool {
	if prefix, ok := strings.CutSuffix(b, "*"); ok && len(a) >= len(prefix) {
		a, b = a[:len(prefix)], prefix
	}
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}
