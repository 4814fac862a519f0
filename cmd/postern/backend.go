package main

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// backend is where a store command takes effect: the running server, over
// its control socket, or the store itself when no server runs. Each
// command is written once against it. *authstore.Store has the store's
// methods; the control client speaks the same over the JSON API.
type backend interface {
	// CreateUser answers the account password the server chose when in
	// had none (a running server never creates a user without one).
	CreateUser(ctx context.Context, in authstore.NewUser) (authstore.User, string, error)
	ListUsers(ctx context.Context) ([]authstore.User, error)
	GetUser(ctx context.Context, name string) (authstore.User, error)
	SetPassword(ctx context.Context, name, password string, revokeAppPasswords bool) error
	SetDisabled(ctx context.Context, name string, disabled bool) error
	DeleteUser(ctx context.Context, name string) error
	// SetUpstreamPassword stores what postern logs in upstream with for
	// the user when the upstream's login is "stored".
	SetUpstreamPassword(ctx context.Context, name, password string) error
	ClearUpstreamPassword(ctx context.Context, name string) error

	CreateAppPassword(ctx context.Context, user string, in authstore.NewAppPassword) (authstore.AppPassword, string, error)
	ListAppPasswords(ctx context.Context, user string) ([]authstore.AppPassword, error)
	RevokeAppPassword(ctx context.Context, user, id string) error

	ResetMFA(ctx context.Context, user string) error
	DisableMFA(ctx context.Context, user string) error
	IssueAdminCode(ctx context.Context, user string, ttl time.Duration) (string, error)

	Policy(ctx context.Context) (authstore.Policy, error)
	SetPolicy(ctx context.Context, p authstore.Policy) error

	AuditTail(ctx context.Context, n int) ([]authstore.Event, error)
	VerifyAudit(ctx context.Context) (int, error)
	// ExportAudit calls fn for every event f matches, oldest first.
	ExportAudit(ctx context.Context, f authstore.AuditFilter, fn func(authstore.Event) error) error

	CreateToken(ctx context.Context, in authstore.NewToken) (authstore.Token, string, error)
	ListTokens(ctx context.Context) ([]authstore.Token, error)
	RevokeToken(ctx context.Context, id string) error

	// Live sessions exist only in a running server.
	Sessions(ctx context.Context, user string) ([]api.LiveSession, error)
	EndSession(ctx context.Context, id string) error
	EndUserSessions(ctx context.Context, user string) (int, error)
}

// errNoServer answers the commands that need a running server.
var errNoServer = errors.New("no postern server is running here (live sessions exist only while `postern serve` runs)")

// directStore is the backend without a server: the store, opened by the
// command itself.
type directStore struct{ *authstore.Store }

func (d directStore) CreateUser(ctx context.Context, in authstore.NewUser) (authstore.User, string, error) {
	u, err := d.Store.CreateUser(ctx, in)
	return u, "", err
}

func (directStore) Sessions(context.Context, string) ([]api.LiveSession, error) {
	return nil, errNoServer
}
func (directStore) EndSession(context.Context, string) error             { return errNoServer }
func (directStore) EndUserSessions(context.Context, string) (int, error) { return 0, errNoServer }

func controlPath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "control.sock") }

// withBackend runs fn against the running server when its control socket
// answers, and against the store opened here when there is none (no socket,
// or a socket nobody listens on: a server that crashed).
func withBackend(ctx context.Context, load func() (*config.Config, error), fn func(context.Context, backend) error) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	ctl, err := dialControl(ctx, controlPath(cfg))
	switch {
	case err == nil:
		return fn(ctx, ctl)
	case !errors.Is(err, errNoServer):
		return err
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	ctx = authstore.WithActor(ctx, authstore.Actor{Name: cliActor()})
	return errors.Join(fn(ctx, directStore{st}), st.Close())
}

// withServer runs fn against the running server only: live sessions
// exist nowhere else.
func withServer(ctx context.Context, load func() (*config.Config, error), fn func(context.Context, backend) error) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	sock := controlPath(cfg)
	ctl, err := dialControl(ctx, sock)
	if errors.Is(err, errNoServer) {
		return fmt.Errorf("%w: nothing answers on %s", errNoServer, sock)
	}
	if err != nil {
		return err
	}
	return fn(ctx, ctl)
}

// cliActor names the operator in the audit log like the server names a
// control-socket caller.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Uid
	}
	return "cli"
}

var (
	_ backend = directStore{}
	_ backend = (*controlClient)(nil)
)
