package proxy

import (
	"context"
	"fmt"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

// errUserControl refuses user names that could smuggle a second command to
// the upstream (P4).
var errUserControl = fmt.Errorf("user name contains CR, LF or NUL: %w", authstore.ErrUnauthorized)

// Admission is one login between its credential check and its
// registration. Every front-end logs in through the same skeleton: Admit
// (refuse a name with CR, LF or NUL, mark the registry, authenticate,
// refuse a granted name with CR, LF or NUL), then whatever the protocol
// does before the session is live (the upstream login of IMAP and POP3),
// then registration, which a kick since the mark refuses. A front-end
// never asks the Authenticator or the registry on its own.
type Admission struct {
	// Grant is authstore's verdict. A front-end that logs in upstream
	// settles it with the outcome (Grant.Settle); the admission settles
	// what it refuses itself.
	Grant authstore.Grant
	reg   *Registry
	mark  uint64
}

// Admit runs the first half of a login for attempt a on reg: kicks from
// now on apply to the session being logged in, so that a revocation during
// the login is not missed. Its errors wrap authstore.ErrUnauthorized (a
// refused name or credential) or authstore.ErrUnavailable (anything the
// store could not decide), never anything else.
func Admit(ctx context.Context, reg *Registry, auth Authenticator, a authstore.Attempt) (*Admission, error) {
	if safetext.BreaksCommand(a.Username) {
		return nil, errUserControl
	}
	mark := reg.mark()
	grant, err := auth.Authenticate(ctx, a)
	if err != nil {
		return nil, authError(err)
	}
	if safetext.BreaksCommand(grant.Username) {
		grant.Settle(errUserControl, auditReason(errUserControl))
		return nil, errUserControl
	}
	return &Admission{Grant: grant, reg: reg, mark: mark}, nil
}

// Track registers a request of a front-end that authenticates every
// request (DAV), as Registry.Track does, under the admission's mark. info
// needs only what the front-end knows (ID, Protocol, Remote, Client,
// Start); Track fills in what the grant decides. A refused request's grant
// is settled, and its error is answered as a refused credential.
func (ad *Admission) Track(info SessionInfo, end func(reason string)) (release func(), err error) {
	release, err = ad.reg.Track(withGrant(info, ad.Grant), ad.mark, end)
	if err != nil {
		return nil, ad.refused(err)
	}
	return release, nil
}

// register adds a session as Track adds a request.
func (ad *Admission) register(e entry) error {
	if err := ad.reg.add(e, ad.mark); err != nil {
		return ad.refused(err)
	}
	return nil
}

func (ad *Admission) refused(err error) error {
	err = fmt.Errorf("%w: %w", authstore.ErrUnauthorized, err)
	ad.Grant.Settle(err, auditReason(err))
	return err
}

// withGrant returns info with the fields that g decides set.
func withGrant(info SessionInfo, g authstore.Grant) SessionInfo {
	info.Username, info.UserID, info.CredentialID = g.Username, g.UserID, g.CredentialID()
	info.AppPassName, info.Expires = g.AppPassName, g.Expires
	return info
}
