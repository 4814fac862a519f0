package admin

import (
	"context"
	"net/http"
	"strings"
)

// EnablePages serves the web pages on every path the route table leaves
// free. Call it before serving.
func (s *Server) EnablePages(mail []MailSetting) error {
	p, err := NewPages(PagesConfig{
		API: s.mux, Mail: mail, TLS: !s.cfg.Plain, Logger: s.log, AdminCodeTTL: s.cfg.AdminCodeTTL,
		CSRFToken: func(ctx context.Context, id string) string {
			if len(id) != sessionIDLen {
				return ""
			}
			ws, err := s.store.GetWebSession(ctx, id)
			if err != nil {
				return ""
			}
			return ws.CSRF
		},
	})
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
