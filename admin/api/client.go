package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Client sends one JSON request at a time to the API and reads its answer.
type Client struct {
	HTTP *http.Client
	// Base is the URL the paths are appended to ("http://postern/api/v1").
	Base string
	// MaxAnswer bounds the bytes read of one answer.
	MaxAnswer int64
}

// Call sends method path with in (when not nil) as the JSON body, and
// decodes a 2xx answer into out (when not nil). Any other answer is an
// *Error; a request that got no answer returns the transport's error.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.Open(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxAnswer))
	if err != nil {
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("unreadable answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Open sends method path with in (when not nil) as the JSON body and
// returns a 2xx answer for the caller to read and close: a stream (a
// backup, an audit export). Any other answer is an *Error.
func (c *Client) Open(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, c.MaxAnswer))
		return nil, errorAnswer(resp, data)
	}
	return resp, nil
}

// errorAnswer reads an error answer; one not in the error format is named
// by its status.
func errorAnswer(resp *http.Response, data []byte) *Error {
	var b ErrorBody
	if json.Unmarshal(data, &b) != nil || b.Error.Code == "" {
		b.Error.Code = Code(http.StatusText(resp.StatusCode))
	}
	b.Error.Status = resp.StatusCode
	b.Error.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	return &b.Error
}
