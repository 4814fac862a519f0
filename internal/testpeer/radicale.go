package testpeer

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	radicaleStartTimeout = 60 * time.Second
	radicaleStopTimeout  = 15 * time.Second
	radicaleStartTries   = 3
	// radicaleBin is Debian's launcher; another python3 may come first on
	// PATH, so the interpreter its #! line names must be the one used.
	radicaleBin = "/usr/bin/radicale"
	nobodyID    = 65534
)

// RadicalePeer is a running private Radicale on loopback. It trusts the
// X-Remote-User header for the user name (http_x_remote_user) and lets each
// user reach only their own collections (owner_only).
type RadicalePeer struct {
	URL        string // http://127.0.0.1:PORT/
	Addr       string
	UserHeader string // X-Remote-User
	Storage    string // the collections folder
	LogFile    string
}

// RadicaleOptions choose how a private Radicale authenticates.
type RadicaleOptions struct {
	// Users, when set, makes Radicale check Basic credentials itself
	// against these names and passwords (htpasswd, plain) instead of
	// trusting X-Remote-User: a client can then talk to it directly.
	Users map[string]string
	// LogLevel is Radicale's logging level ("warning" when empty); at
	// "info" its log names every request's method and path and every
	// login's user, what the upstream received.
	LogLevel string
}

// Radicale starts a private Radicale for t and stops it when t ends. It
// skips t when Radicale is not installed (see RequirePeer).
func Radicale(t testing.TB) *RadicalePeer {
	t.Helper()
	return RadicaleWith(t, RadicaleOptions{})
}

// RadicaleWith is Radicale with options.
func RadicaleWith(t testing.TB, opts RadicaleOptions) *RadicalePeer {
	t.Helper()
	bin := RequirePeer(t, "radicale")
	if _, err := os.Stat(radicaleBin); err == nil {
		bin = radicaleBin
	}
	dir, err := os.MkdirTemp("", "postern-radicale-")
	if err != nil {
		t.Fatalf("radicale dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &RadicalePeer{UserHeader: "X-Remote-User", Storage: filepath.Join(dir, "collections"), LogFile: filepath.Join(dir, "radicale.log")}
	asNobody := os.Geteuid() == 0
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r.Storage, 0o700); err != nil {
		t.Fatal(err)
	}
	if asNobody {
		// Radicale needs no privilege; as root it would own everything.
		if err := os.Chown(r.Storage, nobodyID, nobodyID); err != nil {
			t.Fatal(err)
		}
	}
	for try := 1; ; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "http://" + r.Addr + "/"
		conf := filepath.Join(dir, "config")
		auth := "type = http_x_remote_user"
		if opts.Users != nil {
			users := filepath.Join(dir, "users")
			var b strings.Builder
			for name, pw := range opts.Users {
				fmt.Fprintf(&b, "%s:%s\n", name, pw)
			}
			if err := os.WriteFile(users, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			auth = "type = htpasswd\nhtpasswd_filename = " + users + "\nhtpasswd_encryption = plain"
		}
		if err := os.WriteFile(conf, []byte(radicaleConf(r, auth, opts.LogLevel)), 0o644); err != nil {
			t.Fatal(err)
		}
		diag, err := runRadicale(t, bin, r, conf, asNobody)
		if err == nil {
			return r
		}
		if try < radicaleStartTries && strings.Contains(diag, "in use") {
			continue
		}
		t.Fatalf("start radicale: %v\n%s", err, diag)
	}
}

func radicaleConf(r *RadicalePeer, auth, level string) string {
	if level == "" {
		level = "warning"
	}
	return fmt.Sprintf(`[server]
hosts = %s
[auth]
%s
[rights]
type = owner_only
[storage]
filesystem_folder = %s
[web]
type = none
[logging]
level = %s
mask_passwords = True
`, r.Addr, auth, r.Storage, level)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func runRadicale(t testing.TB, bin string, r *RadicalePeer, conf string, asNobody bool) (string, error) {
	log, err := os.Create(r.LogFile)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = peerProcAttr()
	if asNobody {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobodyID, Gid: nobodyID}
	}
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(conf))
	if err := cmd.Start(); err != nil {
		log.Close()
		return "", fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(radicaleStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	if err := waitRadicale(r, exited); err != nil {
		stop()
		out, _ := os.ReadFile(r.LogFile)
		return string(out), err
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(r.LogFile)
			t.Logf("radicale %s:\n%s", r.Addr, out)
		}
	})
	return "", nil
}

// waitRadicale polls until Radicale answers an unauthenticated OPTIONS.
func waitRadicale(r *RadicalePeer, exited <-chan struct{}) error {
	deadline := time.Now().Add(radicaleStartTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("radicale exited")
		default:
		}
		req, _ := http.NewRequest(http.MethodOptions, r.URL, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("radicale did not answer in time")
}
