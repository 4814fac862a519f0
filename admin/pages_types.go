package admin

import (
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// The API's answers as the pages read them.

// apiUser is a user as GET /me and /users/{user} answer.
type apiUser = authstore.User

// apiMFA is GET /me/mfa and /users/{user}/mfa.
type apiMFA = api.MFAResponse

// apiEvent is one audit event.
type apiEvent = authstore.Event

// apiSession is one live mail or calendar session.
type apiSession = api.LiveSession

// apiPolicy is the organisation's two-step policy.
type apiPolicy = api.PolicyResponse

// apiToken is an API token without its secret.
type apiToken = authstore.Token

// apiAppPassword is an app password with how many sessions use it now.
type apiAppPassword = api.AppPasswordInfo

// isAdmin reports whether the user may open the admin console.
func isAdmin(u *apiUser) bool { return u != nil && u.Role == authstore.RoleAdmin }

// timeOrZero is t, or the zero time for nil.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
