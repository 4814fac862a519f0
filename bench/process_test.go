package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds on a target process's start and stop.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// process is a server the benchmark started: postern, nginx or the relay.
type process struct {
	name   string
	cmd    *exec.Cmd
	logf   string // combined output
	exited chan struct{}
}

// startProcess runs bin with args, output into dir/<name>.log. The kernel
// ends it if the test binary dies first.
func startProcess(t *testing.T, dir, name, bin string, args ...string) *process {
	t.Helper()
	logf := filepath.Join(dir, name+".log")
	out, err := os.Create(logf)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logf: logf, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end and kills it if it does not.
func (p *process) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Logf("%s ignored SIGTERM for %v; killing it", p.name, stopTimeout)
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail is the end of the process's output, for failure messages.
func (p *process) tail() string {
	data, _ := os.ReadFile(p.logf)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// waitGreeting polls addr until it answers with an IMAP greeting: none of
// the servers signals readiness otherwise.
func (p *process) waitGreeting(t *testing.T, addrs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, addr := range addrs {
		if err := waitGreeting(ctx, addr, p.exited); err != nil {
			t.Fatalf("%s on %s: %v\n%s", p.name, addr, err, p.tail())
		}
	}
}

func waitGreeting(ctx context.Context, addr string, exited <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := greets(ctx, addr)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-tick.C:
		}
	}
}

// greets reports whether addr accepts a connection and sends something:
// a TLS listener sends nothing before the handshake, so there a timely
// connect is enough.
func greets(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	line, err := bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	return nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago; the server that gets it binds it soon after.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buildBinary builds a main package of the module in src ("" for this
// one) into dir.
func buildBinary(t *testing.T, src, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}
