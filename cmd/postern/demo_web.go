package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/postern-dev/postern/authstore"
)

// The demo's web side: besides the demo user (two-step on), a newcomer
// without two-step, to try enrollment, and an administrator.
const (
	demoNewcomer = "newcomer"
	demoAdmin    = "admin"
)

type demoWeb struct {
	newcomerPassword, adminPassword string
}

// demoWebUsers creates the newcomer (who can read the same embedded
// mailbox server with an app password they make) and the administrator.
func demoWebUsers(ctx context.Context, st *authstore.Store, newcomerUpstreamPw string) (demoWeb, error) {
	ctx = authstore.WithActor(ctx, demoActor)
	d := demoWeb{newcomerPassword: rand.Text()[:16], adminPassword: rand.Text()[:16]}
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: demoNewcomer, Display: "New Comer", Password: d.newcomerPassword}); err != nil {
		return d, err
	}
	if err := st.SetUpstreamPassword(ctx, demoNewcomer, newcomerUpstreamPw); err != nil {
		return d, err
	}
	_, err := st.CreateUser(ctx, authstore.NewUser{Name: demoAdmin, Display: "Demo Admin", Role: authstore.RoleAdmin, Password: d.adminPassword})
	return d, err
}

func (c *cli) printDemoWeb(signIn string, addrs map[string]string, s demoSetup, d demoWeb) {
	w := c.stdout
	base := "https://" + addrs["admin"]
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Web pages (self-signed certificate: let the browser accept it once):")
	fmt.Fprintf(w, "  sign in              %s\n", signIn)
	fmt.Fprintf(w, "  %-20s password %s; two-step on: put the authenticator line above into any authenticator app\n", demoUser, s.password)
	fmt.Fprintf(w, "  %-20s password %s; two-step off: turn it on from the account page to try enrollment\n", demoNewcomer, d.newcomerPassword)
	fmt.Fprintf(w, "  %-20s password %s; the admin console is at %s/admin\n", demoAdmin, d.adminPassword, base)
}
