package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// controlClient is the backend of a running server: the admin JSON API
// over the control socket, acting as the operator.
type controlClient struct {
	sock string
	api  *api.Client
}

// controlBase is the URL every request goes to; the socket decides where.
const controlBase = "http://postern/api/v1"

// maxAnswer bounds an answer the CLI reads (an audit page of 1000 events
// fits many times over).
const maxAnswer = 64 << 20

// dialControl reaches the server on sock, or reports errNoServer when
// nothing listens there.
func dialControl(ctx context.Context, sock string) (*controlClient, error) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	c, err := dial(ctx, "", "")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, errNoServer
		}
		return nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: dial, MaxIdleConns: 1, IdleConnTimeout: 10 * time.Second}
	return &controlClient{sock: sock, api: &api.Client{HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Minute},
		Base: controlBase, MaxAnswer: maxAnswer}}, nil
}

// call sends one request; in (when non-nil) is the JSON body, out (when
// non-nil) receives the JSON answer. A refusal is an *api.Error.
func (c *controlClient) call(ctx context.Context, method, path string, in, out any) error {
	return c.reached(c.api.Call(ctx, method, path, in, out))
}

// open sends one request whose 2xx answer the caller streams and closes.
func (c *controlClient) open(ctx context.Context, method, path string, in any) (*http.Response, error) {
	resp, err := c.api.Open(ctx, method, path, in)
	return resp, c.reached(err)
}

// reached says what a failed exchange means for the operator: an API
// refusal as it is, a connection the server closed as a permission
// problem, anything else as the socket's.
func (c *controlClient) reached(err error) error {
	var ae *api.Error
	switch {
	case err == nil, errors.As(err, &ae):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		// The server closes a connection from a peer other than root or
		// its own user before reading.
		return fmt.Errorf("the server on %s closed the connection: only root and the user postern runs as may use it (%w)", c.sock, err)
	}
	return fmt.Errorf("server on %s: %w", c.sock, err)
}

func esc(s string) string { return url.PathEscape(s) }

func (c *controlClient) CreateUser(ctx context.Context, in authstore.NewUser) (authstore.User, string, error) {
	req := api.NewUserRequest{Username: in.Name, Password: in.Password, DisplayName: in.Display, Email: in.Email, Role: in.Role}
	var out api.NewUserResponse
	err := c.call(ctx, "POST", "/users", req, &out)
	return out.User, out.Password, err
}

func (c *controlClient) ListUsers(ctx context.Context) ([]authstore.User, error) {
	var out api.UserList
	err := c.call(ctx, "GET", "/users", nil, &out)
	return out.Users, err
}

func (c *controlClient) GetUser(ctx context.Context, name string) (authstore.User, error) {
	var u authstore.User
	err := c.call(ctx, "GET", "/users/"+esc(name), nil, &u)
	return u, err
}

func (c *controlClient) SetPassword(ctx context.Context, name, password string, revoke bool) error {
	req := api.SetPasswordRequest{Password: password, RevokeAppPasswords: revoke}
	return c.call(ctx, "PUT", "/users/"+esc(name)+"/password", req, nil)
}

func (c *controlClient) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return c.call(ctx, "PATCH", "/users/"+esc(name), api.UpdateUserRequest{Disabled: &disabled}, nil)
}

func (c *controlClient) DeleteUser(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(name), nil, nil)
}

func (c *controlClient) SetUpstreamPassword(ctx context.Context, name, password string) error {
	return c.call(ctx, "PUT", "/users/"+esc(name)+"/upstream-password", api.UpstreamPasswordRequest{Password: password}, nil)
}

func (c *controlClient) ClearUpstreamPassword(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(name)+"/upstream-password", nil, nil)
}

func (c *controlClient) CreateAppPassword(ctx context.Context, user string, in authstore.NewAppPassword) (authstore.AppPassword, string, error) {
	req := api.NewAppPasswordRequest{Name: in.Name, Scopes: in.Scopes, ExpiresAt: timeOrNil(in.Expires)}
	var out api.NewAppPasswordResponse
	err := c.call(ctx, "POST", "/users/"+esc(user)+"/app-passwords", req, &out)
	return out.AppPassword, out.Secret, err
}

// timeOrNil is t, or nil for the zero time (a field left out).
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (c *controlClient) ListAppPasswords(ctx context.Context, user string) ([]authstore.AppPassword, error) {
	var out api.AppPasswordList
	err := c.call(ctx, "GET", "/users/"+esc(user)+"/app-passwords", nil, &out)
	aps := make([]authstore.AppPassword, len(out.AppPasswords))
	for i, ap := range out.AppPasswords {
		aps[i] = ap.AppPassword
	}
	return aps, err
}

func (c *controlClient) RevokeAppPassword(ctx context.Context, user, id string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(user)+"/app-passwords/"+esc(id), nil, nil)
}

func (c *controlClient) ResetMFA(ctx context.Context, user string) error {
	return c.call(ctx, "POST", "/users/"+esc(user)+"/mfa/reset", nil, nil)
}

func (c *controlClient) DisableMFA(ctx context.Context, user string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(user)+"/mfa", nil, nil)
}

func (c *controlClient) IssueAdminCode(ctx context.Context, user string, ttl time.Duration) (string, error) {
	var out api.AdminCodeResponse
	err := c.call(ctx, "POST", "/users/"+esc(user)+"/backup-code", api.AdminCodeRequest{TTL: ttl.String()}, &out)
	return out.Code, err
}

func (c *controlClient) Policy(ctx context.Context) (authstore.Policy, error) {
	var out api.PolicyResponse
	err := c.call(ctx, "GET", "/policy", nil, &out)
	p := authstore.Policy{MFARequired: out.MFARequired}
	if out.GraceUntil != nil {
		p.GraceUntil = *out.GraceUntil
	}
	return p, err
}

func (c *controlClient) SetPolicy(ctx context.Context, p authstore.Policy) error {
	return c.call(ctx, "PUT", "/policy", api.PolicyRequest{MFARequired: p.MFARequired, GraceUntil: timeOrNil(p.GraceUntil)}, nil)
}

// AuditTail pages back from the newest event until it has n, and returns
// them oldest first like the store does.
func (c *controlClient) AuditTail(ctx context.Context, n int) ([]authstore.Event, error) {
	var evs []authstore.Event
	cursor := ""
	for len(evs) < n {
		q := url.Values{"limit": {strconv.Itoa(min(n-len(evs), 1000))}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page api.EventList
		if err := c.call(ctx, "GET", "/audit?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		evs = append(evs, page.Events...)
		if page.NextCursor == "" || len(page.Events) == 0 {
			break
		}
		cursor = page.NextCursor
	}
	slices.Reverse(evs)
	return evs, nil
}

func (c *controlClient) VerifyAudit(ctx context.Context) (int, error) {
	var out api.VerifyResponse
	if err := c.call(ctx, "POST", "/audit/verify", nil, &out); err != nil {
		return 0, err
	}
	if !out.OK {
		return out.Events, fmt.Errorf("%w after %d events", authstore.ErrAuditChain, out.Events)
	}
	return out.Events, nil
}

func (c *controlClient) CreateToken(ctx context.Context, in authstore.NewToken) (authstore.Token, string, error) {
	req := api.NewTokenRequest{Name: in.Name, Role: in.Role, User: in.User, ExpiresAt: timeOrNil(in.Expires)}
	var out api.NewTokenResponse
	err := c.call(ctx, "POST", "/tokens", req, &out)
	return out.Token, out.Secret, err
}

func (c *controlClient) ListTokens(ctx context.Context) ([]authstore.Token, error) {
	var out api.TokenList
	err := c.call(ctx, "GET", "/tokens", nil, &out)
	return out.Tokens, err
}

func (c *controlClient) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/tokens/"+esc(id), nil, nil)
}

func (c *controlClient) Sessions(ctx context.Context, user string) ([]api.LiveSession, error) {
	path := "/sessions"
	if user != "" {
		path += "?" + url.Values{"user": {user}}.Encode()
	}
	var out api.SessionList
	err := c.call(ctx, "GET", path, nil, &out)
	return out.Sessions, err
}

func (c *controlClient) EndSession(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/sessions/"+esc(id), nil, nil)
}

func (c *controlClient) EndUserSessions(ctx context.Context, user string) (int, error) {
	var out api.EndedSessions
	err := c.call(ctx, "DELETE", "/users/"+esc(user)+"/sessions", nil, &out)
	return out.Ended, err
}
