package dav

import (
	"io"
	"net/http"
)

// maxEarlyBody bounds what is read of a request body answered by postern
// itself. Bodies sent to discovery or before a challenge are PROPFIND and
// REPORT queries of a few kilobytes, or a PUT of an event or a card; the
// bound is what net/http itself reads of an unread HTTP/1.1 body before it
// gives up and closes, so HTTP/1.1 clients see no change.
const maxEarlyBody = 256 << 10

// pathRefusal is the 400 answer to a path not in canonical form.
const pathRefusal = `Bad Request: the request path is not in canonical form. ` +
	`Send it without "." or ".." segments, empty segments ("//"), "\" or ";", ` +
	`control characters, or percent-encoded "/", "\", "." or "%".`

// ownAnswer writes the answers postern gives itself (the discovery
// redirect, a challenge, a refusal, 503), and reads the request body before
// the header goes out. Over HTTP/2 an answer that ends the stream while the
// client still sends its body makes net/http reset the stream
// (RST_STREAM NO_ERROR, RFC 9113 section 8.1), which curl reports as
// "Stream error in the HTTP/2 framing layer" instead of the answer: one
// PROPFIND with a body to /.well-known/caldav in three did so. Past
// maxEarlyBody the connection is closed after the answer (over HTTP/2,
// net/http sends GOAWAY for "Connection: close"). A client that sent
// "Expect: 100-continue" waits to be asked for its body, and is not.
type ownAnswer struct {
	http.ResponseWriter
	r    *http.Request
	done bool
}

func (w *ownAnswer) WriteHeader(code int) {
	if !w.done {
		w.done = true
		w.discardBody()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *ownAnswer) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *ownAnswer) discardBody() {
	if w.r.Body == nil || w.r.Header.Get("Expect") != "" {
		return
	}
	if n, _ := io.CopyN(io.Discard, w.r.Body, maxEarlyBody+1); n > maxEarlyBody {
		w.Header().Set("Connection", "close")
	}
}
