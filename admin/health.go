package admin

import (
	"net/http"
	"reflect"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern-dev/postern/admin/api"
)

// openRoutes need no credential: health, readiness, metrics and the API
// document.
func (s *Server) openRoutes() []route {
	return []route{
		{Method: "GET", Path: "/healthz", Access: accessOpen, Summary: "The process is up",
			Handle: jsonOut(func(*apiCall) (api.HealthResponse, error) { return api.HealthResponse{Status: "ok"}, nil })},
		{Method: "GET", Path: "/readyz", Access: accessOpen,
			Handle:  endpoint{out: reflect.TypeFor[api.ReadyResponse](), call: s.readyz},
			Summary: "The store is readable and every upstream answered its last probe (503 otherwise)"},
		{Method: "GET", Path: "/metrics", Access: accessOpen, Handle: writes(s.metrics), Produces: "text/plain",
			Summary: "Prometheus metrics"},
		{Method: "GET", Path: "/api/v1/openapi.json", Access: accessOpen, Summary: "This API's OpenAPI 3.1 document",
			Handle: endpoint{out: reflect.TypeFor[api.OpenAPIResponse](), call: s.openAPI}},
	}
}

// readyz answers its document with 200, or with 503 when not ready.
func (s *Server) readyz(c *apiCall) (any, error) {
	res := api.ReadyResponse{Ready: true, Store: true, Failing: []string{}}
	if _, err := s.store.Policy(c.ctx()); err != nil {
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

func (s *Server) metrics(c *apiCall) error {
	if s.cfg.Metrics == nil {
		return errNotFound
	}
	promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}).ServeHTTP(c.W, c.R)
	return nil
}

// openAPI serves the document built at New.
func (s *Server) openAPI(c *apiCall) (any, error) {
	c.W.Header().Set("Content-Type", "application/json")
	c.W.Write(s.openapi)
	return handled, nil
}
