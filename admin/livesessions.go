package admin

import (
	"context"
	"strconv"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// liveSessionRoutes show and end live mail and calendar sessions, which
// the proxy's registry holds.
func (s *Server) liveSessionRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/sessions", Access: accessAdmin, Query: []string{"user"},
			Handle: jsonOut(func(c *apiCall) (api.SessionList, error) {
				return s.liveSessions(c.P, c.R.URL.Query().Get("user")), nil
			}),
			Summary: "Live mail sessions"},
		{Method: "DELETE", Path: "/api/v1/sessions/{id}", Access: accessAdmin,
			Handle:  noContent(func(c *apiCall) error { return s.endLiveSession(c.ctx(), c.P, c.param("id")) }),
			Summary: "End one live session"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/sessions", Access: accessAdmin,
			Handle:  jsonOut(func(c *apiCall) (api.EndedSessions, error) { return s.endUserSessions(c.ctx(), c.P, c.subject()) }),
			Summary: "End every live session of a user"},
	}
}

// kickReason is what an ended session's client is told.
const kickReason = "session ended by an administrator"

// liveSessions lists the live sessions of user, or of everyone when user
// is "".
func (s *Server) liveSessions(_ *principal, user string) api.SessionList {
	f := proxy.Filter{All: true}
	if user != "" {
		cu, err := authstore.CanonicalUsername(user)
		if err != nil {
			return api.SessionList{Sessions: []api.LiveSession{}}
		}
		f = proxy.Filter{Username: cu}
	}
	out := []api.LiveSession{}
	for _, si := range s.cfg.Sessions.Find(f) {
		ls := api.LiveSession{ID: si.ID, User: si.Username, Protocol: si.Protocol, Remote: si.Remote.String(),
			Client: si.Client, Started: si.Start.UTC(), BytesIn: si.BytesIn, BytesOut: si.BytesOut}
		if si.CredentialID != authstore.PasswordCredential {
			ls.AppPasswordID, ls.AppPasswordName = si.CredentialID, si.AppPassName
		}
		out = append(out, ls)
	}
	return api.SessionList{Sessions: out}
}

func (s *Server) endLiveSession(ctx context.Context, _ *principal, id string) error {
	si, ok := s.cfg.Sessions.KickSession(id, kickReason)
	if !ok {
		return refuse(api.NotFound, "no such live session")
	}
	return s.store.Record(ctx, authstore.Event{Kind: "session.end", User: si.Username, Result: "ok", Detail: "id=" + id})
}

func (s *Server) endUserSessions(ctx context.Context, _ *principal, user string) (api.EndedSessions, error) {
	name, err := named(user)
	if err != nil {
		return api.EndedSessions{}, err
	}
	n := s.cfg.Sessions.Kick(proxy.Filter{Username: name}, kickReason)
	err = s.store.Record(ctx, authstore.Event{Kind: "session.end_all", User: name, Result: "ok",
		Detail: "ended=" + strconv.Itoa(n)})
	return api.EndedSessions{Ended: n}, err
}
