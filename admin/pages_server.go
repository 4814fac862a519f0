package admin

import (
	"net/http"
	"strings"
)

// EnablePages serves the web pages on every path the route table leaves
// free. Call it before serving.
func (s *Server) EnablePages(mail []MailSetting) error {
	p, err := newPages(s, mail)
	if err != nil {
		return err
	}
	s.pages = p
	return nil
}

// fallback answers what no route matched: a page, or the API's 404.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	if s.pages != nil && !strings.HasPrefix(r.URL.Path, "/api/") {
		s.pages.ServeHTTP(w, r)
		return
	}
	writeError(w, errNotFound)
}
