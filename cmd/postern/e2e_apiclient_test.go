package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/postern-dev/postern/admin/api"
	"io"
	"net/http"
	"strings"
)

// apiClient calls a served admin listener's JSON API over plain HTTP from
// one source address, as an automation script or a browser's fetch would.
// It returns errors instead of failing the test: the crash test kills the
// server under its requests.
type apiClient struct {
	base  string // http://ADDR
	hc    *http.Client
	token string // an admin API token, for the admin routes
}

func newAPIClient(addr, src, token string) *apiClient {
	return &apiClient{base: "http://" + addr, token: token,
		hc: &http.Client{Timeout: e2eIO, Transport: &http.Transport{DialContext: dialer(src).DialContext}}}
}

// apiAnswer is one answer: its status and body.
type apiAnswer struct {
	status int
	body   []byte
	cookie string // the session cookie the answer set, if any
}

// decode reads the body into out.
func (a apiAnswer) decode(out any) error {
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("%d %s: %w", a.status, a.body, err)
	}
	return nil
}

// call sends one request; in is sent as JSON when set. With a cookie the
// request rides that web session (and carries its CSRF token); without,
// it carries the admin token.
func (c *apiClient) call(method, path string, in any, cookie, csrf string) (apiAnswer, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return apiAnswer{}, err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return apiAnswer{}, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case cookie != "":
		req.AddCookie(&http.Cookie{Name: api.CookieName, Value: cookie})
		req.Header.Set(api.CSRFHeader, csrf)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer res.Body.Close()
	a := apiAnswer{status: res.StatusCode}
	if a.body, err = io.ReadAll(res.Body); err != nil {
		return apiAnswer{}, err
	}
	for _, ck := range res.Cookies() {
		if ck.Name == api.CookieName {
			a.cookie = ck.Value
		}
	}
	return a, nil
}

// signIn signs user in on the web with the password and then code (an
// authenticator, backup or admin-issued code). It returns the answer of
// the last step taken: 200 for a finished sign-in, 401 for a refused
// password or code, 503 when the store could not record it.
func (c *apiClient) signIn(user, password, code string) (apiAnswer, error) {
	first, err := c.call("POST", "/api/v1/session", map[string]string{"username": user, "password": password}, "", "")
	if err != nil || first.status != http.StatusOK {
		return first, err
	}
	var st struct {
		State string `json:"state"`
		CSRF  string `json:"csrf_token"`
	}
	if err := first.decode(&st); err != nil {
		return first, err
	}
	if st.State != api.StateSecondFactor {
		return first, fmt.Errorf("sign-in of %s: state %q after the password, want %q", user, st.State, api.StateSecondFactor)
	}
	second, err := c.call("POST", "/api/v1/session/second-factor", map[string]string{"code": code}, first.cookie, st.CSRF)
	if err != nil || second.status != http.StatusOK {
		return second, err
	}
	if err := second.decode(&st); err != nil {
		return second, err
	}
	if st.State != api.StateSignedIn {
		return second, fmt.Errorf("sign-in of %s: state %q after the code, want %q", user, st.State, api.StateSignedIn)
	}
	return second, nil
}

// userPath is the admin API path of one user's resource.
func userPath(user string, rest ...string) string {
	return "/api/v1/users/" + user + strings.Join(rest, "")
}
