package testpeer

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A database with its own owner, reachable over verified TLS, survives a
// restart and a crash of the server.
func TestPostgresDatabaseOverTLS(t *testing.T) {
	p := Postgres(t, PostgresOptions{TLS: true})
	dsn := p.Database(t, "sogo")
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", p.CAFile)
	u.RawQuery = q.Encode()
	c := pgConnect(t, u.String())
	var ssl bool
	if err := c.QueryRow(context.Background(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("connection is not TLS (%v)", err)
	}
	pgExec(t, c, "CREATE TABLE t (v text)")
	pgExec(t, c, "INSERT INTO t VALUES ('kept')")
	c.Close(context.Background())

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := p.Exec("sogo", "SELECT v FROM t")
	if err != nil || got != "kept" {
		t.Fatalf("after restarts: %q, %v", got, err)
	}
}

// A synchronous standby holds every acknowledged commit, and once
// promoted accepts writes.
func TestPostgresStandbyPromote(t *testing.T) {
	p := Postgres(t, PostgresOptions{})
	dsn := p.Database(t, "app")
	s := p.Standby(t, StandbyOptions{Name: "node2", Synchronous: true})
	c := pgConnect(t, dsn)
	pgExec(t, c, "CREATE TABLE t (v int)")
	pgExec(t, c, "INSERT INTO t VALUES (1)")
	c.Close(context.Background())
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Exec("app", "SELECT count(*) FROM t"); err != nil || got != "1" {
		t.Fatalf("standby holds %q rows (%v), want 1", got, err)
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	su, _ := url.Parse(dsn)
	su.Host = s.Addr
	c2 := pgConnect(t, su.String())
	pgExec(t, c2, "INSERT INTO t VALUES (2)")
}
