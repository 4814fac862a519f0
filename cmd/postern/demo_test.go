package main

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/testpeer"
)

// TestDemoPrintedCurlListsMailbox runs `postern demo` in-process and pastes
// the curl commands it prints, as a newcomer would.
func TestDemoPrintedCurlListsMailbox(t *testing.T) {
	testpeer.RequirePeer(t, "curl")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var code int
	wg.Go(func() {
		c := &cli{stdin: strings.NewReader(""), stdout: pw, stderr: io.Discard}
		code = c.run(ctx, []string{"demo"})
		pw.Close()
	})
	defer func() {
		cancel()
		go io.Copy(io.Discard, pr)
		wg.Wait()
		if code != 0 {
			t.Errorf("demo exited %d", code)
		}
	}()

	var commands []string
	sc := bufio.NewScanner(pr)
	deadline := time.AfterFunc(30*time.Second, func() { pr.CloseWithError(io.ErrUnexpectedEOF) })
	defer deadline.Stop()
	for len(commands) < 3 && sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "curl ") {
			commands = append(commands, line)
		}
	}
	if len(commands) != 3 {
		t.Fatalf("demo printed %d curl commands: %v", len(commands), sc.Err())
	}
	list := runShell(t, commands[0])
	for _, want := range []string{"* 1 FETCH", "* 3 FETCH", "Welcome to your mailbox"} {
		if !strings.Contains(list, want) {
			t.Errorf("listing lacks %q:\n%s", want, list)
		}
	}
	if msg := runShell(t, commands[1]); !strings.Contains(msg, "Subject: Welcome to your mailbox") {
		t.Errorf("first message:\n%s", msg)
	}
	if out := runShell(t, commands[2]); !strings.Contains(out, `"sessions":[`) {
		t.Errorf("admin curl:\n%s", out)
	}
	// The account password is refused: two-step verification is on.
	bad := strings.Replace(commands[0], "--user 'demo:", "--user 'demo:x", 1)
	if out, err := exec.Command("sh", "-c", bad+" -s -S").CombinedOutput(); err == nil {
		t.Errorf("a wrong app password listed the mailbox:\n%s", out)
	}
}

func runShell(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", cmd+" -s -S").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}
