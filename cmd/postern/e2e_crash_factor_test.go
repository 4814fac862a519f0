package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
)

// factorUser is a user with two-step verification who signs in on the
// web over and over, from a source of its own.
type factorUser struct {
	name, password, secret, src string

	// last is the TOTP step of the last acknowledged sign-in; pending is a
	// step sent when the server was killed; replayed is the last step
	// replayed after a restart.
	last, pending, replayed int64
	// unused are backup codes never sent; pendingCode was sent when the
	// server was killed; used were acknowledged since the last restart.
	unused      []string
	pendingCode string
	used        []string
	// issued is an admin-issued code acknowledged and not sent yet;
	// usedIssued is the last one, acknowledged as used since the last
	// restart and not voided by a later issue.
	issued, usedIssued string
}

func newFactorUser(t *testing.T, st *authstore.Store, name, src string) *factorUser {
	t.Helper()
	ctx := e2eCtx()
	f := &factorUser{name: name, password: "s1-" + name + "-password", src: src}
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: f.password}); err != nil {
		t.Fatal(err)
	}
	enr, err := st.BeginTOTP(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code, err := totp.GenerateCode(enr.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if f.unused, err = st.ConfirmTOTP(ctx, name, code); err != nil {
		t.Fatal(err)
	}
	f.secret, f.last = enr.Secret, totpStep(now)
	return f
}

func totpStep(at time.Time) int64 { return at.Unix() / 30 }

func (f *factorUser) code(t *testing.T, step int64) string {
	code, err := totp.GenerateCode(f.secret, time.Unix(step*30, 0))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// signIns alternates TOTP sign-ins, on each step the server accepts (the
// current and the next), with backup-code and admin-issued-code sign-ins
// while it waits for the next step.
func (f *factorUser) signIns(ctx context.Context, c *apiClient, stats *crashStats) error {
	for ctx.Err() == nil {
		step := max(f.last+1, totpStep(time.Now()))
		var err error
		if step <= totpStep(time.Now())+1 {
			err = f.totpSignIn(ctx, c, step, stats)
		} else {
			err = f.codeSignIn(ctx, c, stats)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *factorUser) totpSignIn(ctx context.Context, c *apiClient, step int64, stats *crashStats) error {
	f.pending = step
	code, err := totp.GenerateCode(f.secret, time.Unix(step*30, 0))
	if err != nil {
		return err
	}
	if acked, err := f.signInAcked(ctx, c, code, fmt.Sprint("TOTP step ", step), stats); !acked {
		return err
	}
	f.last, f.pending = step, 0
	stats.add(&stats.totpSignIns)
	return nil
}

// signInAcked signs in with code during the load: true once the server
// acknowledged it, false with no error when the answer never came (the
// kill), an error for any other answer.
func (f *factorUser) signInAcked(ctx context.Context, c *apiClient, code, what string, stats *crashStats) (bool, error) {
	ans, err := c.signIn(f.name, f.password, code)
	switch {
	case err != nil && ans.status == 0:
		inFlight(ctx, stats)
		return false, nil
	case err != nil || ans.status != http.StatusOK:
		return false, fmt.Errorf("sign-in of %s with %s: %v %d %s", f.name, what, err, ans.status, ans.body)
	}
	return true, nil
}

// inFlight notes a write whose answer never came and waits for the kill
// that cut it off to be over.
func inFlight(ctx context.Context, stats *crashStats) {
	stats.add(&stats.uncertain)
	<-ctx.Done()
}

// codeSignIn uses the next backup code, or an admin-issued code, issuing
// one first when there is none.
func (f *factorUser) codeSignIn(ctx context.Context, c *apiClient, stats *crashStats) error {
	if len(f.unused) == 0 && f.issued == "" {
		return f.issue(ctx, c, stats)
	}
	code, fromSet := f.issued, len(f.unused) > 0
	if fromSet {
		code, f.unused = f.unused[0], f.unused[1:]
	} else {
		f.issued = ""
	}
	f.pendingCode = code
	if acked, err := f.signInAcked(ctx, c, code, "a code", stats); !acked {
		return err
	}
	f.pendingCode = ""
	if fromSet {
		f.used = append(f.used, code)
	} else {
		f.usedIssued = code
	}
	stats.add(&stats.codeSignIns)
	return nil
}

func (f *factorUser) issue(ctx context.Context, c *apiClient, stats *crashStats) error {
	// A new code voids the one before: once this issue may have happened,
	// a refusal of the last used code proves nothing.
	f.usedIssued = ""
	ans, err := c.call("POST", userPath(f.name, "/backup-code"), map[string]string{}, "", "")
	if err != nil {
		inFlight(ctx, stats)
		return nil
	}
	var out struct {
		Code string `json:"code"`
	}
	if ans.status != http.StatusOK || ans.decode(&out) != nil || out.Code == "" {
		return fmt.Errorf("issue a code for %s: %d %s", f.name, ans.status, ans.body)
	}
	f.issued = out.Code
	stats.add(&stats.issued)
	return nil
}

// verify checks the factor user's acknowledged sign-ins after a restart,
// then settles the one in flight at the kill, if any.
func (f *factorUser) verify(t *testing.T, c *apiClient, stats *crashStats) {
	t.Helper()
	f.verifyTOTP(t, c, stats)
	for _, code := range append(f.used, f.usedIssued) {
		if code == "" {
			continue
		}
		if ans := f.try(t, c, code); ans.status != http.StatusUnauthorized {
			t.Errorf("%s: a used code after a restart: %d %s, want 401", f.name, ans.status, ans.body)
		}
		stats.add(&stats.codeReplays)
	}
	f.used, f.usedIssued = nil, ""
	if f.pendingCode != "" {
		f.try(t, c, f.pendingCode) // accepted now if the kill beat the write; spent either way
		f.pendingCode = ""
	}
	if f.issued != "" {
		if ans := f.try(t, c, f.issued); ans.status != http.StatusOK {
			t.Errorf("%s: the acknowledged admin-issued code after a restart: %d %s, want it to sign in", f.name, ans.status, ans.body)
		} else {
			f.usedIssued = f.issued
		}
		f.issued = ""
	}
}

// verifyTOTP replays the last acknowledged step while the server would
// still take its code (the step and the next): it must be refused. When a
// sign-in was in flight at the kill, its later step settles the state
// instead, and the replay would prove nothing.
func (f *factorUser) verifyTOTP(t *testing.T, c *apiClient, stats *crashStats) {
	t.Helper()
	if f.pending != 0 {
		f.try(t, c, f.code(t, f.pending))
		f.last, f.pending = max(f.last, f.pending), 0
		return
	}
	if totpStep(time.Now()) > f.last+1 || f.replayed == f.last {
		return // out of the window a refusal proves nothing; in it, once is enough
	}
	f.replayed = f.last
	code := f.code(t, f.last)
	ans := f.try(t, c, code)
	if totpStep(time.Now()) > f.last+1 {
		return
	}
	if ans.status != http.StatusUnauthorized {
		t.Errorf("%s: replay of TOTP step %d after a restart: %d %s, want 401", f.name, f.last, ans.status, ans.body)
	}
	stats.add(&stats.totpReplays)
}

// try signs in with code on the restarted server; only a refusal (401) or
// a success are answers.
func (f *factorUser) try(t *testing.T, c *apiClient, code string) apiAnswer {
	t.Helper()
	ans, err := c.signIn(f.name, f.password, code)
	if err != nil || ans.status != http.StatusOK && ans.status != http.StatusUnauthorized {
		t.Fatalf("%s: sign-in after a restart: %v %d %s", f.name, err, ans.status, ans.body)
	}
	return ans
}
