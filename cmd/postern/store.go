package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

func storePath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "postern.db") }

// openStore opens the store for a CLI command. A store without its key
// file is refused: new keys would silently invalidate every credential.
func openStore(cfg *config.Config) (*authstore.Store, error) {
	path := storePath(cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s (run `postern init`)", path)
	}
	keys, err := authstore.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	return authstore.Open(path, storeOptions(cfg, keys))
}

func storeOptions(cfg *config.Config, keys *authstore.Keys) authstore.Options {
	l := cfg.Limits
	return authstore.Options{
		Keys:          keys,
		FlushInterval: cfg.Limits.LastUsedFlush.Duration,
		Limits: authstore.Limits{
			UserBudget: l.UserFailureBudget, PairBudget: l.UserSourceFailureBudget, SourceFree: l.SourceFreeFailures,
			SourceDelay: l.SourceDelay.Duration, SourceMaxDelay: l.SourceMaxDelay.Duration,
			StaleWindow: l.StaleSecretWindow.Duration,
		},
	}
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) initCmd(ctx context.Context, _ *cli, args []string) error {
	cfg, err := configOnly("init", args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	path := storePath(cfg)
	_, statErr := os.Stat(path)
	storeExists := statErr == nil
	keys, err := authstore.LoadKeyFile(cfg.KeyFile)
	switch {
	case err == nil:
		fmt.Fprintf(c.stdout, "key file %s already exists; kept\n", cfg.KeyFile)
	case storeExists:
		return fmt.Errorf("store %s exists but its key file cannot be used: %w", path, err)
	default:
		if _, serr := os.Stat(cfg.KeyFile); serr == nil {
			return err // present but unusable (permissions, garbage): never overwrite
		}
		if keys, err = authstore.CreateKeyFile(cfg.KeyFile, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "created key file %s (mode 0600; keep it out of backups of %s)\n", cfg.KeyFile, cfg.DataDir)
	}
	st, err := authstore.Open(path, storeOptions(cfg, keys))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "store ready at %s\n", path)
	return errors.Join(c.bootstrapAdmin(ctx, st), st.Close())
}

// bootstrapAdmin gives a new store its first administrator, "admin",
// with a random password printed once, alone on its line: there are no
// default credentials (W4).
func (c *cli) bootstrapAdmin(ctx context.Context, st *authstore.Store) error {
	users, err := st.ListUsers(ctx)
	if err != nil || len(users) > 0 {
		return err
	}
	pw := rand.Text()
	ctx = authstore.WithActor(ctx, authstore.Actor{Name: "init"})
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: "admin", Role: authstore.RoleAdmin, Password: pw}); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "created user admin (role admin); its password, shown once, is on the next line:")
	fmt.Fprintln(c.stdout, pw)
	return nil
}

func (c *cli) checkConfig(ctx context.Context, _ *cli, args []string) error {
	fs := newFlags("check-config")
	path := fs.String("c", defaultConfig, "configuration `file`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if code := config.CheckFile(*path, c.stdout); code != 0 {
		return exitError(code)
	}
	return nil
}
