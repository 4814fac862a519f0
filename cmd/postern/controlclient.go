package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/postern-dev/postern/admin"
	"github.com/postern-dev/postern/authstore"
)

// controlClient is the backend of a running server: the admin JSON API
// over the control socket, acting as the operator.
type controlClient struct {
	sock string
	http *http.Client
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
	return &controlClient{sock: sock, http: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// apiError is the API's error answer.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return e.Message
}

// Is maps the API's codes onto authstore's errors so callers can test
// either backend's answer the same way.
func (e *apiError) Is(target error) bool {
	switch e.Code {
	case "not_found":
		return target == authstore.ErrNotFound
	case "conflict":
		return target == authstore.ErrExists
	case "invalid":
		return target == authstore.ErrInvalid
	case "unavailable":
		return target == authstore.ErrUnavailable
	}
	return false
}

// call sends one request; in (when non-nil) is the JSON body, out (when
// non-nil) receives the JSON answer.
func (c *controlClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, controlBase+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error apiError `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			e.Error.Code = http.StatusText(resp.StatusCode)
		}
		e.Error.Status = resp.StatusCode
		return &e.Error
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("server on %s: unreadable answer to %s %s: %w", c.sock, method, path, err)
	}
	return nil
}

// unreachable explains a request that got no answer. The server closes a
// connection from a peer other than root or its own user before reading.
func (c *controlClient) unreachable(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("the server on %s closed the connection: only root and the user postern runs as may use it (%w)", c.sock, err)
	}
	return fmt.Errorf("server on %s: %w", c.sock, err)
}

func esc(s string) string { return url.PathEscape(s) }

func (c *controlClient) CreateUser(ctx context.Context, in authstore.NewUser) (authstore.User, string, error) {
	req := struct {
		Username    string         `json:"username"`
		Password    string         `json:"password,omitempty"`
		DisplayName string         `json:"display_name,omitempty"`
		Email       string         `json:"email,omitempty"`
		Role        authstore.Role `json:"role,omitempty"`
	}{in.Name, in.Password, in.Display, in.Email, in.Role}
	var out struct {
		User     authstore.User `json:"user"`
		Password string         `json:"password"`
	}
	err := c.call(ctx, "POST", "/users", req, &out)
	return out.User, out.Password, err
}

func (c *controlClient) ListUsers(ctx context.Context) ([]authstore.User, error) {
	var out struct {
		Users []authstore.User `json:"users"`
	}
	err := c.call(ctx, "GET", "/users", nil, &out)
	return out.Users, err
}

func (c *controlClient) GetUser(ctx context.Context, name string) (authstore.User, error) {
	var u authstore.User
	err := c.call(ctx, "GET", "/users/"+esc(name), nil, &u)
	return u, err
}

func (c *controlClient) SetPassword(ctx context.Context, name, password string, revoke bool) error {
	req := struct {
		Password           string `json:"password"`
		RevokeAppPasswords bool   `json:"revoke_app_passwords"`
	}{password, revoke}
	return c.call(ctx, "PUT", "/users/"+esc(name)+"/password", req, nil)
}

func (c *controlClient) SetDisabled(ctx context.Context, name string, disabled bool) error {
	req := struct {
		Disabled bool `json:"disabled"`
	}{disabled}
	return c.call(ctx, "PATCH", "/users/"+esc(name), req, nil)
}

func (c *controlClient) DeleteUser(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(name), nil, nil)
}

func (c *controlClient) SetUpstreamPassword(ctx context.Context, name, password string) error {
	req := struct {
		Password string `json:"password"`
	}{password}
	return c.call(ctx, "PUT", "/users/"+esc(name)+"/upstream-password", req, nil)
}

func (c *controlClient) ClearUpstreamPassword(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/users/"+esc(name)+"/upstream-password", nil, nil)
}

func (c *controlClient) CreateAppPassword(ctx context.Context, user string, in authstore.NewAppPassword) (authstore.AppPassword, string, error) {
	req := struct {
		Name    string               `json:"name"`
		Scopes  []authstore.Protocol `json:"scopes,omitempty"`
		Expires time.Time            `json:"expires_at,omitzero"`
	}{in.Name, in.Scopes, in.Expires}
	var out struct {
		AppPassword authstore.AppPassword `json:"app_password"`
		Secret      string                `json:"secret"`
	}
	err := c.call(ctx, "POST", "/users/"+esc(user)+"/app-passwords", req, &out)
	return out.AppPassword, out.Secret, err
}

func (c *controlClient) ListAppPasswords(ctx context.Context, user string) ([]authstore.AppPassword, error) {
	var out struct {
		AppPasswords []authstore.AppPassword `json:"app_passwords"`
	}
	err := c.call(ctx, "GET", "/users/"+esc(user)+"/app-passwords", nil, &out)
	return out.AppPasswords, err
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
	req := struct {
		TTL string `json:"ttl,omitempty"`
	}{ttl.String()}
	var out struct {
		Code string `json:"code"`
	}
	err := c.call(ctx, "POST", "/users/"+esc(user)+"/backup-code", req, &out)
	return out.Code, err
}

func (c *controlClient) Policy(ctx context.Context) (authstore.Policy, error) {
	var p authstore.Policy
	err := c.call(ctx, "GET", "/policy", nil, &p)
	return p, err
}

func (c *controlClient) SetPolicy(ctx context.Context, p authstore.Policy) error {
	return c.call(ctx, "PUT", "/policy", p, nil)
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
		var page struct {
			Events     []authstore.Event `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
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
	var out struct {
		OK     bool   `json:"ok"`
		Events int    `json:"events"`
		Error  string `json:"error"`
	}
	if err := c.call(ctx, "POST", "/audit/verify", nil, &out); err != nil {
		return 0, err
	}
	if !out.OK {
		return out.Events, fmt.Errorf("%w after %d events", authstore.ErrAuditChain, out.Events)
	}
	return out.Events, nil
}

func (c *controlClient) CreateToken(ctx context.Context, in authstore.NewToken) (authstore.Token, string, error) {
	req := struct {
		Name    string         `json:"name"`
		Role    authstore.Role `json:"role"`
		User    string         `json:"user,omitempty"`
		Expires time.Time      `json:"expires_at,omitzero"`
	}{in.Name, in.Role, in.User, in.Expires}
	var out struct {
		Token  authstore.Token `json:"token"`
		Secret string          `json:"secret"`
	}
	err := c.call(ctx, "POST", "/tokens", req, &out)
	return out.Token, out.Secret, err
}

func (c *controlClient) ListTokens(ctx context.Context) ([]authstore.Token, error) {
	var out struct {
		Tokens []authstore.Token `json:"tokens"`
	}
	err := c.call(ctx, "GET", "/tokens", nil, &out)
	return out.Tokens, err
}

func (c *controlClient) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/tokens/"+esc(id), nil, nil)
}

func (c *controlClient) Sessions(ctx context.Context, user string) ([]admin.LiveSession, error) {
	path := "/sessions"
	if user != "" {
		path += "?" + url.Values{"user": {user}}.Encode()
	}
	var out admin.SessionList
	err := c.call(ctx, "GET", path, nil, &out)
	return out.Sessions, err
}

func (c *controlClient) EndSession(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/sessions/"+esc(id), nil, nil)
}

func (c *controlClient) EndUserSessions(ctx context.Context, user string) (int, error) {
	var out admin.EndedSessions
	err := c.call(ctx, "DELETE", "/users/"+esc(user)+"/sessions", nil, &out)
	return out.Ended, err
}
