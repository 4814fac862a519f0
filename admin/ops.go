package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

var auditQuery = []string{"user", "kind", "result", "since", "until", "cursor", "limit"}

// opsRoutes are the admins' organisation-wide routes.
func (s *Server) opsRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/policy", Access: Admin, Handle: s.getPolicy, Out: typeOf[api.PolicyResponse](),
			Summary: "The organisation's two-step policy"},
		{Method: "PUT", Path: "/api/v1/policy", Access: Admin, Reauth: true, Handle: s.putPolicy,
			In: typeOf[api.PolicyRequest](), Out: typeOf[api.PolicyResponse](),
			Summary: "Require two-step verification (with an optional grace date) or not"},
		{Method: "GET", Path: "/api/v1/sessions", Access: Admin, Handle: s.listSessions, Out: typeOf[api.SessionList](),
			Query: []string{"user"}, Summary: "Live mail sessions"},
		{Method: "DELETE", Path: "/api/v1/sessions/{id}", Access: Admin, Handle: s.endLiveSession,
			Summary: "End one live session"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/sessions", Access: Admin, Handle: s.endUserSessions,
			Out: typeOf[api.EndedSessions](), Summary: "End every live session of a user"},
		{Method: "GET", Path: "/api/v1/audit", Access: Admin, Handle: s.listAudit, Out: typeOf[api.EventList](),
			Query: auditQuery, Summary: "Audit events, newest first, with filters and a cursor"},
		{Method: "GET", Path: "/api/v1/audit/export", Access: Admin, Handle: s.exportAudit, Produces: "application/x-ndjson",
			Query: auditQuery[:5], Summary: "Audit events as JSON Lines, oldest first"},
		{Method: "POST", Path: "/api/v1/audit/verify", Access: Admin, Handle: s.verifyAudit, Out: typeOf[api.VerifyResponse](),
			Summary: "Check the audit log's hash chain"},
		{Method: "GET", Path: "/api/v1/tokens", Access: Admin, Handle: s.listTokens, Out: typeOf[api.TokenList](),
			Summary: "API tokens (never their secrets)"},
		{Method: "POST", Path: "/api/v1/tokens", Access: Admin, Reauth: true, Handle: s.createToken,
			In: typeOf[api.NewTokenRequest](), Out: typeOf[api.NewTokenResponse](),
			Summary: "Create an API token (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Access: Admin, Handle: s.revokeToken,
			Summary: "Revoke an API token"},
	}
}

func (s *Server) policy(c *Call) (api.PolicyResponse, error) {
	ctx := c.R.Context()
	p, err := s.store.Policy(ctx)
	if err != nil {
		return api.PolicyResponse{}, err
	}
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return api.PolicyResponse{}, err
	}
	res := api.PolicyResponse{MFARequired: p.MFARequired}
	if !p.GraceUntil.IsZero() {
		g := p.GraceUntil.UTC()
		res.GraceUntil = &g
	}
	for _, u := range us {
		if !u.MFA.Enabled && !u.Disabled {
			res.NotEnrolled++
		}
	}
	return res, nil
}

func (s *Server) getPolicy(c *Call) (any, error) { return s.policy(c) }

func (s *Server) putPolicy(c *Call) (any, error) {
	in := c.In.(*api.PolicyRequest)
	p := authstore.Policy{MFARequired: in.MFARequired}
	if in.GraceUntil != nil {
		if !in.MFARequired {
			return nil, invalid("grace_until needs mfa_required")
		}
		p.GraceUntil = *in.GraceUntil
	}
	if err := s.store.SetPolicy(c.R.Context(), p); err != nil {
		return nil, err
	}
	return s.policy(c)
}

func (s *Server) listSessions(c *Call) (any, error) {
	f := proxy.Filter{All: true}
	if user := c.R.URL.Query().Get("user"); user != "" {
		cu, err := authstore.CanonicalUsername(user)
		if err != nil {
			return api.SessionList{Sessions: []api.LiveSession{}}, nil
		}
		f = proxy.Filter{Username: cu}
	}
	out := []api.LiveSession{}
	for _, si := range s.cfg.Sessions.Find(f) {
		ls := api.LiveSession{ID: si.ID, User: si.Username, Protocol: si.Protocol, Remote: si.Remote.String(),
			Client: si.Client, Started: si.Start.UTC(), BytesIn: si.BytesIn, BytesOut: si.BytesOut}
		if si.CredentialID != "password" {
			ls.AppPasswordID, ls.AppPasswordName = si.CredentialID, si.AppPassName
		}
		out = append(out, ls)
	}
	return api.SessionList{Sessions: out}, nil
}

func (s *Server) endLiveSession(c *Call) (any, error) {
	id := c.R.PathValue("id")
	si, ok := s.cfg.Sessions.KickSession(id, "session ended by an administrator")
	if !ok {
		return nil, refuse(api.NotFound, "no such live session")
	}
	return nil, s.store.Record(c.R.Context(), authstore.Event{Kind: "session.end", User: si.Username, Result: "ok", Detail: "id=" + id})
}

func (s *Server) endUserSessions(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	n := s.cfg.Sessions.Kick(proxy.Filter{Username: name}, "session ended by an administrator")
	err = s.store.Record(c.R.Context(), authstore.Event{Kind: "session.end_all", User: name, Result: "ok",
		Detail: "ended=" + strconv.Itoa(n)})
	return api.EndedSessions{Ended: n}, err
}

// auditFilter reads the filter query parameters; since and until are
// RFC 3339.
func auditFilter(c *Call) (authstore.AuditFilter, error) {
	q := c.R.URL.Query()
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

func (s *Server) listAudit(c *Call) (any, error) {
	f, err := auditFilter(c)
	if err != nil {
		return nil, err
	}
	return s.queryAudit(c, f)
}

// queryAudit pages through events matching f with the cursor and limit
// query parameters.
func (s *Server) queryAudit(c *Call, f authstore.AuditFilter) (any, error) {
	q := c.R.URL.Query()
	before, ok := authstore.ParseCursor(q.Get("cursor"))
	if !ok {
		return nil, invalid("cursor: not a cursor from next_cursor")
	}
	f.Before = before
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, invalid("limit: 1 to 1000")
		}
		limit = n
	}
	s.store.FlushAudit() // queued sign-in events belong in the answer
	evs, next, err := s.store.QueryAudit(c.R.Context(), f, limit)
	if err != nil {
		return nil, err
	}
	if evs == nil {
		evs = []authstore.Event{}
	}
	return api.EventList{Events: evs, NextCursor: authstore.FormatCursor(next)}, nil
}

func (s *Server) exportAudit(c *Call) (any, error) {
	f, err := auditFilter(c)
	if err != nil {
		return nil, err
	}
	s.store.FlushAudit()
	var evs []authstore.Event
	// Collect first: the read transaction must not wait on the network.
	if err := s.store.ExportAudit(c.R.Context(), f, func(ev authstore.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		return nil, err
	}
	c.W.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriter(c.W)
	enc := json.NewEncoder(bw)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			break
		}
	}
	bw.Flush()
	return handled, nil
}

func (s *Server) verifyAudit(c *Call) (any, error) {
	s.store.FlushAudit()
	n, err := s.store.VerifyAudit(c.R.Context())
	switch {
	case errors.Is(err, authstore.ErrAuditChain):
		return api.VerifyResponse{OK: false, Events: n, Error: err.Error()}, nil
	case err != nil:
		return nil, err
	}
	return api.VerifyResponse{OK: true, Events: n}, nil
}

func (s *Server) listTokens(c *Call) (any, error) {
	ts, err := s.store.ListTokens(c.R.Context())
	if err != nil {
		return nil, err
	}
	return api.TokenList{Tokens: ts}, nil
}

func (s *Server) createToken(c *Call) (any, error) {
	in := c.In.(*api.NewTokenRequest)
	nt := authstore.NewToken{Name: in.Name, Role: in.Role, User: in.User}
	if nt.Role == "" {
		nt.Role = authstore.RoleAdmin
	}
	if in.ExpiresAt != nil {
		nt.Expires = *in.ExpiresAt
	}
	tok, secret, err := s.store.CreateToken(c.R.Context(), nt)
	if err != nil {
		return nil, err
	}
	return api.NewTokenResponse{Token: tok, Secret: secret}, nil
}

func (s *Server) revokeToken(c *Call) (any, error) {
	return nil, s.store.RevokeToken(c.R.Context(), c.R.PathValue("id"))
}
