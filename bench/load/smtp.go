package load

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrReply means an SMTP server answered a command with a code other than
// the one the step needs.
var ErrReply = errors.New("smtp command failed")

// maxReplyLines bounds one SMTP reply; an EHLO answer has a dozen lines.
const maxReplyLines = 100

// SendConfig describes a submission loop: the login loop's workers each
// connect, say EHLO, authenticate with AUTH PLAIN, send Message from the
// account's own address (user@Domain) to To, say QUIT and close, again and
// again.
type SendConfig struct {
	LoginConfig
	// Message is the message's text with CRLF line ends; no line may start
	// with a dot (it is sent as it is, not dot-stuffed).
	Message []byte
	Domain  string // the senders' domain: MAIL FROM:<user@Domain>
	To      string // the one recipient
}

// Sends runs the loop and reports the window: Logins counts the messages
// the server accepted, and Latency runs from starting the connection to
// the acceptance of the message (its 250 after the final dot). It fails
// when no message at all was accepted.
func Sends(ctx context.Context, cfg SendConfig) (LoginResult, error) {
	if len(cfg.Accounts) == 0 {
		return LoginResult{}, fmt.Errorf("send loop: need accounts")
	}
	return loop(ctx, cfg.loop("send"), func(ctx context.Context, n int) (time.Duration, error) {
		return SendOnce(ctx, cfg, cfg.Accounts[n%len(cfg.Accounts)], n)
	})
}

// SendOnce runs one submission session and returns the time from starting
// the connection to the message's acceptance.
func SendOnce(ctx context.Context, cfg SendConfig, a Account, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	c, err := dialConn(ctx, cfg.Target, n)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + a.User + "\x00" + a.Password))
	steps := []struct{ cmd, code string }{
		{"", "220"}, // the greeting
		{"EHLO load.example", "250"},
		{"AUTH PLAIN " + plain, "235"},
		{"MAIL FROM:<" + a.User + "@" + cfg.Domain + ">", "250"},
		{"RCPT TO:<" + cfg.To + ">", "250"},
		{"DATA", "354"},
	}
	for _, s := range steps {
		if err := c.smtpStep(s.cmd, s.code); err != nil {
			return 0, fmt.Errorf("%s as %s: %w", strings.Fields(s.cmd + " greeting")[0], a.User, err)
		}
	}
	c.w.Write(cfg.Message)
	if err := c.smtpStep(".", "250"); err != nil {
		return 0, fmt.Errorf("message of %s: %w", a.User, err)
	}
	lat := time.Since(start)
	if err := c.smtpStep("QUIT", "221"); err != nil {
		return 0, fmt.Errorf("QUIT: %w", err)
	}
	return lat, nil
}

// smtpStep sends cmd (none when empty) and reads one reply, which must
// have code.
func (c *Conn) smtpStep(cmd, code string) error {
	if cmd != "" {
		c.w.WriteString(cmd)
		c.w.WriteString("\r\n")
		if err := c.w.Flush(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	for range maxReplyLines {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, code) {
			return fmt.Errorf("%w: %.80q", ErrReply, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return nil
		}
	}
	return fmt.Errorf("%w: a reply of more than %d lines", ErrReply, maxReplyLines)
}
