package proxy

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu  sync.Mutex
	set []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = append(c.set, t)
	return nil
}

func (c *deadlineConn) deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.set)
}

func TestBindDeadline(t *testing.T) {
	d := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	past := time.Unix(1, 0)
	cases := []struct {
		name         string
		deadline     bool
		cancelBefore bool // cancel ctx before release
		want         []time.Time
		cancelAfter  bool // cancel ctx after release: must change nothing
	}{
		{name: "plain context", cancelAfter: true},
		{name: "deadline", deadline: true, want: []time.Time{d}, cancelAfter: true},
		{name: "canceled while bound", cancelBefore: true, want: []time.Time{past}},
		{name: "deadline then canceled", deadline: true, cancelBefore: true, want: []time.Time{d, past}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.deadline {
				ctx, cancel = context.WithDeadline(ctx, d)
				defer cancel()
			}
			c := &deadlineConn{}
			release := BindDeadline(ctx, c.SetDeadline)
			if tc.cancelBefore {
				cancel()
			}
			release()
			if got := c.deadlines(); !slices.Equal(got, tc.want) {
				t.Errorf("deadlines = %v, want %v", got, tc.want)
			}
			if tc.cancelAfter {
				cancel()
				if got := c.deadlines(); !slices.Equal(got, tc.want) {
					t.Errorf("after release: deadlines = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestFailureHint: the hint names app passwords with or without an
// account page, and the page's address never splits the answer's line.
func TestFailureHint(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"", "Authentication failed. Mail apps need an app password."},
		{"https://mail.example.org/account", "Authentication failed. Mail apps need an app password: https://mail.example.org/account"},
		{"https://x.example/\r\n* OK forged", "Authentication failed. Mail apps need an app password: https://x.example/* OK forged"},
		{"\r\n", "Authentication failed. Mail apps need an app password."},
	} {
		if got := FailureHint("Mail apps", tt.url); got != tt.want {
			t.Errorf("FailureHint(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
