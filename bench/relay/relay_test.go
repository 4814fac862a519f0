package relay

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/testpeer"
)

// ioTimeout bounds every wait so that a bug fails the test instead of
// hanging it.
const ioTimeout = 10 * time.Second

// echoServer greets, echoes every line, and closes its side when the
// client has closed its own.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				c.Write([]byte("HELLO\n"))
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// startRelay serves cfg until the test ends and returns its address.
func startRelay(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- New(cfg).Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, clientTLS *tls.Config) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if clientTLS != nil {
		c = tls.Client(c, clientTLS)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelay(t *testing.T) {
	serverTLS, clientTLS := testpeer.TLS(t)
	upstream := echoServer(t)
	tests := []struct {
		name      string
		serverTLS *tls.Config
		clientTLS *tls.Config
	}{
		{"plain", nil, nil},
		{"tls terminated", serverTLS, clientTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, startRelay(t, Config{Upstream: upstream, TLS: tt.serverTLS}), tt.clientTLS)
			r := bufio.NewReader(c)
			if line, err := r.ReadString('\n'); err != nil || line != "HELLO\n" {
				t.Fatalf("greeting %q, %v", line, err)
			}
			for _, msg := range []string{"a LOGIN x y\n", "b LOGOUT\n"} {
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				if line, err := r.ReadString('\n'); err != nil || line != msg {
					t.Fatalf("echo of %q: %q, %v", msg, line, err)
				}
			}
			// The client's half-close reaches the upstream, whose close
			// comes back as the end of the stream.
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
				t.Fatalf("after half-close: %q, %v; want a clean end", rest, err)
			}
		})
	}
}

func TestRelayUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	c := dial(t, startRelay(t, Config{Upstream: down}), nil)
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read from a relay without upstream: %d bytes, %v; want the connection closed", n, err)
	}
}
