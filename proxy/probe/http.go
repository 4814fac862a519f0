package probe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// options probes an HTTP upstream: one OPTIONS request for the URL, on a
// connection of its own, with no credential and no identity header. Any
// answer below 500 shows a DAV server that is there (one that wants a
// user answers 401); a 5xx is what a web server in front of a DAV server
// that is down answers, and DAV clients get it too.
func (p *Prober) options(ctx context.Context, t Target) error {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: p.cfg.Timeout}).DialContext,
		TLSHandshakeTimeout:   p.cfg.Timeout,
		ResponseHeaderTimeout: p.cfg.Timeout,
		DisableKeepAlives:     true,
	}
	defer tr.CloseIdleConnections()
	if t.URL.Scheme == "https" {
		cfg, err := t.Upstream.ClientTLS()
		if err != nil {
			return err
		}
		tr.TLSClientConfig = cfg
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, t.URL.String(), nil)
	if err != nil {
		return fmt.Errorf("%s.url: %w", t.Key, err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return httpProblem(t, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= http.StatusInternalServerError {
		return fmt.Errorf("%s answers %q", t.Upstream.Address, resp.Status)
	}
	return nil
}

// httpProblem explains a failed request in terms of the keys to look at.
func httpProblem(t Target, err error) error {
	var op *net.OpError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("TLS with %s: the certificate is not signed by a trusted authority: set %s.ca_file to the upstream's CA (%w)",
			t.Upstream.Address, t.Key, err)
	case errors.As(err, &host):
		return fmt.Errorf("TLS with %s: the certificate does not name the host of %s.url (%w)", t.Upstream.Address, t.Key, err)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("cannot connect (%s.url): %w", t.Key, err)
	}
	return fmt.Errorf("no answer from %s: %w", t.Upstream.Address, err)
}
