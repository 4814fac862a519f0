package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

var auditQuery = []string{"user", "kind", "result", "since", "until", "cursor", "limit"}

// auditRoutes read the audit log: one's own events, and an admin's view
// of all of them.
func (s *Server) auditRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/me/activity", Access: accessSelf, Query: []string{"cursor", "limit"},
			Handle:  jsonOut(func(c *apiCall) (api.EventList, error) { return s.activity(c.ctx(), c.P, c.R.URL.Query()) }),
			Summary: "Own audit events, newest first"},
		{Method: "GET", Path: "/api/v1/audit", Access: accessAdmin, Query: auditQuery,
			Handle:  jsonOut(func(c *apiCall) (api.EventList, error) { return s.listAudit(c.ctx(), c.P, c.R.URL.Query()) }),
			Summary: "Audit events, newest first, with filters and a cursor"},
		{Method: "GET", Path: "/api/v1/audit/export", Access: accessAdmin, Query: auditQuery[:5], Produces: "application/x-ndjson",
			Handle:  writes(s.getAuditExport),
			Summary: "Audit events as JSON Lines, oldest first"},
		{Method: "POST", Path: "/api/v1/audit/verify", Access: accessAdmin,
			Handle:  jsonOut(func(c *apiCall) (api.VerifyResponse, error) { return s.verifyAudit(c.ctx(), c.P) }),
			Summary: "Check the audit log's hash chain"},
	}
}

// auditFilter reads the filter query parameters; since and until are
// RFC 3339.
func auditFilter(q url.Values) (authstore.AuditFilter, error) {
	f := authstore.AuditFilter{Kind: q.Get("kind"), Result: q.Get("result")}
	if u := q.Get("user"); u != "" {
		cu, err := authstore.CanonicalUsername(u)
		if err != nil {
			return f, invalid("user: not a valid username")
		}
		f.User = cu
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.key); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, invalid(t.key + ": want an RFC 3339 time")
			}
			*t.dst = tm
		}
	}
	return f, nil
}

// activity pages through who's own events with the cursor and limit query
// parameters.
func (s *Server) activity(ctx context.Context, who *principal, q url.Values) (api.EventList, error) {
	return s.queryAudit(ctx, who, authstore.AuditFilter{User: who.User}, q)
}

// listAudit pages through the events the query's filter selects.
func (s *Server) listAudit(ctx context.Context, who *principal, q url.Values) (api.EventList, error) {
	f, err := auditFilter(q)
	if err != nil {
		return api.EventList{}, err
	}
	return s.queryAudit(ctx, who, f, q)
}

// queryAudit pages through events matching f with the cursor and limit
// query parameters.
func (s *Server) queryAudit(ctx context.Context, _ *principal, f authstore.AuditFilter, q url.Values) (api.EventList, error) {
	before, ok := authstore.ParseCursor(q.Get("cursor"))
	if !ok {
		return api.EventList{}, invalid("cursor: not a cursor from next_cursor")
	}
	f.Before = before
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return api.EventList{}, invalid("limit: 1 to 1000")
		}
		limit = n
	}
	s.store.FlushAudit() // queued sign-in events belong in the answer
	evs, next, err := s.store.QueryAudit(ctx, f, limit)
	if err != nil {
		return api.EventList{}, err
	}
	if evs == nil {
		evs = []authstore.Event{}
	}
	return api.EventList{Events: evs, NextCursor: authstore.FormatCursor(next)}, nil
}

func (s *Server) getAuditExport(c *apiCall) error {
	evs, err := s.exportAudit(c.ctx(), c.P, c.R.URL.Query())
	if err != nil {
		return err
	}
	writeJSONLines(c.W, evs)
	return nil
}

// exportAudit is every event the query's filter selects, oldest first.
func (s *Server) exportAudit(ctx context.Context, _ *principal, q url.Values) ([]authstore.Event, error) {
	f, err := auditFilter(q)
	if err != nil {
		return nil, err
	}
	s.store.FlushAudit()
	var evs []authstore.Event
	// Collect first: the read transaction must not wait on the network.
	err = s.store.ExportAudit(ctx, f, func(ev authstore.Event) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, err
}

// writeJSONLines answers events as JSON Lines.
func writeJSONLines(w http.ResponseWriter, evs []authstore.Event) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			break
		}
	}
	bw.Flush()
}

func (s *Server) verifyAudit(ctx context.Context, _ *principal) (api.VerifyResponse, error) {
	s.store.FlushAudit()
	n, err := s.store.VerifyAudit(ctx)
	switch {
	case errors.Is(err, authstore.ErrAuditChain):
		return api.VerifyResponse{OK: false, Events: n, Error: err.Error()}, nil
	case err != nil:
		return api.VerifyResponse{}, err
	}
	return api.VerifyResponse{OK: true, Events: n}, nil
}
