package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StandbyOptions choose how a streaming standby follows its primary.
type StandbyOptions struct {
	// Name is the standby's application_name, which the primary's
	// synchronous_standby_names refers to; "standby" when empty.
	Name string
	// Synchronous makes the primary wait for this standby to confirm each
	// commit before acknowledging it (synchronous_standby_names), so
	// nothing acknowledged is lost when the standby is promoted.
	Synchronous bool
}

// Standby starts a streaming standby of p for t (a base backup taken with
// pg_basebackup -R, following p over replication) and removes it when t
// ends. Promote turns it into a primary.
func (p *PostgresPeer) Standby(t testing.TB, opts StandbyOptions) *PostgresPeer {
	t.Helper()
	s, err := p.StartStandby(opts)
	if err != nil {
		t.Fatalf("start standby: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postgres standby %s:\n%s", s.Addr, s.logTail())
		}
		s.Close()
	})
	return s
}

// StartStandby is Standby without a test; Close removes it.
func (p *PostgresPeer) StartStandby(opts StandbyOptions) (*PostgresPeer, error) {
	if opts.Name == "" {
		opts.Name = "standby"
	}
	if !pgNameRE.MatchString(opts.Name) {
		return nil, fmt.Errorf("standby name %q: use lowercase letters, digits and _", opts.Name)
	}
	s, err := newPostgresPeer()
	if err != nil {
		return nil, err
	}
	s.Superuser, s.SuperPassword, s.CAFile = p.Superuser, p.SuperPassword, p.CAFile
	if err := p.baseBackup(s, opts.Name); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startOnFreePort(); err != nil {
		s.Close()
		return nil, err
	}
	if opts.Synchronous {
		if err := p.requireSync(opts.Name); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// baseBackup copies p into s's data directory and writes the connection
// the standby streams from, named so the primary can wait for it.
func (p *PostgresPeer) baseBackup(s *PostgresPeer, name string) error {
	out, err := p.command("pg_basebackup", "-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.Superuser,
		"-D", s.Dir, "-X", "stream", "-R", "--no-sync", "-c", "fast").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	conninfo := fmt.Sprintf("host=%s port=%d user=%s password=%s application_name=%s sslmode=disable",
		p.Host, p.Port, p.Superuser, p.SuperPassword, name)
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("standby settings: %w", err)
	}
	_, err = fmt.Fprintf(f, "primary_conninfo = %s\n", pgLiteral(conninfo))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// requireSync makes p wait for the named standby at every commit and
// returns once the standby streams synchronously.
func (p *PostgresPeer) requireSync(name string) error {
	if _, err := p.Exec("postgres", "ALTER SYSTEM SET synchronous_standby_names = "+pgLiteral(name)); err != nil {
		return err
	}
	if _, err := p.Exec("postgres", "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	deadline := time.Now().Add(pgStartTimeout)
	for time.Now().Before(deadline) {
		state, err := p.Exec("postgres", "SELECT sync_state FROM pg_stat_replication WHERE application_name = "+pgLiteral(name))
		if err == nil && state == "sync" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("standby %s not synchronous within %v", name, pgStartTimeout)
}

// Promote turns a standby into a primary that accepts writes, and waits
// until it does.
func (p *PostgresPeer) Promote() error {
	if _, err := p.Exec("postgres", "SELECT pg_promote(true, 60)"); err != nil {
		return err
	}
	deadline := time.Now().Add(pgStartTimeout)
	for time.Now().Before(deadline) {
		if rec, err := p.Exec("postgres", "SELECT pg_is_in_recovery()"); err == nil && rec == "f" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("standby %s still in recovery after %v", p.Addr, pgStartTimeout)
}
