package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern-dev/postern/admin/api"
)

// openRoutes need no credential: health, readiness, metrics and the API
// document.
func (s *Server) openRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/healthz", Access: Open, Handle: s.healthz, Out: typeOf[api.HealthResponse](),
			Summary: "The process is up"},
		{Method: "GET", Path: "/readyz", Access: Open, Handle: s.readyz, Out: typeOf[api.ReadyResponse](),
			Summary: "The store is readable and every upstream answered its last probe (503 otherwise)"},
		{Method: "GET", Path: "/metrics", Access: Open, Handle: s.metrics, Produces: "text/plain",
			Summary: "Prometheus metrics"},
		{Method: "GET", Path: "/api/v1/openapi.json", Access: Open, Handle: s.openAPI, Out: typeOf[api.OpenAPIResponse](),
			Summary: "This API's OpenAPI 3.1 document"},
	}
}

func (s *Server) healthz(c *Call) (any, error) { return api.HealthResponse{Status: "ok"}, nil }

func (s *Server) readyz(c *Call) (any, error) {
	res := api.ReadyResponse{Ready: true, Store: true, Failing: []string{}}
	if _, err := s.store.Policy(c.R.Context()); err != nil {
		res.Ready, res.Store = false, false
	}
	if s.cfg.Ready != nil {
		if ok, failing := s.cfg.Ready.Ready(); !ok {
			res.Ready = false
			res.Failing = append(res.Failing, failing...)
		}
	}
	if !res.Ready {
		writeJSON(c.W, http.StatusServiceUnavailable, res)
		return handled, nil
	}
	return res, nil
}

func (s *Server) metrics(c *Call) (any, error) {
	if s.cfg.Metrics == nil {
		return nil, errNotFound
	}
	promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}).ServeHTTP(c.W, c.R)
	return handled, nil
}

func (s *Server) openAPI(c *Call) (any, error) {
	c.W.Header().Set("Content-Type", "application/json")
	c.W.Write(s.openapi)
	return handled, nil
}
