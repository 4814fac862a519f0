package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// TestClientReadsAnswers: a JSON answer decodes into the contract's type,
// 204 into nothing; an error answer is an *Error with its code, message,
// status and Retry-After, which errors.Is maps onto the store's errors; an
// answer not in the error format is named by its status.
func TestClientReadsAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/sessions":
			w.Write([]byte(`{"ended":3}`))
		case "/api/v1/none":
			w.WriteHeader(http.StatusNoContent)
		case "/api/v1/busy":
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"code":"throttled","message":"too many"}}`))
		case "/api/v1/gone":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no such user"}}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html>bad gateway</html>`))
		}
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Base: srv.URL + "/api/v1", MaxAnswer: 1 << 20}
	ctx := context.Background()

	var ended EndedSessions
	if err := c.Call(ctx, "DELETE", "/sessions", nil, &ended); err != nil || ended.Ended != 3 {
		t.Errorf("JSON answer: %+v %v", ended, err)
	}
	if err := c.Call(ctx, "DELETE", "/none", nil, &ended); err != nil {
		t.Errorf("204: %v", err)
	}
	var e *Error
	if err := c.Call(ctx, "POST", "/busy", CodeRequest{Code: "1"}, nil); !errors.As(err, &e) ||
		e.Code != Throttled || e.Message != "too many" || e.Status != 429 || e.RetryAfter != 2 {
		t.Errorf("429: %#v", err)
	}
	if err := c.Call(ctx, "GET", "/gone", nil, nil); !errors.Is(err, authstore.ErrNotFound) || err.Error() != "no such user" {
		t.Errorf("404: %v", err)
	}
	if err := c.Call(ctx, "GET", "/proxy", nil, nil); !errors.As(err, &e) || e.Code != "Bad Gateway" || err.Error() != "Bad Gateway (HTTP 502)" {
		t.Errorf("502 in HTML: %v", err)
	}
}
