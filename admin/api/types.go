package api

import (
	"time"

	"github.com/postern-dev/postern/authstore"
)

// Signing in and re-verifying: /api/v1/session…

// SignInRequest is POST /api/v1/session.
type SignInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// SignInResponse says what the new session may do next.
type SignInResponse struct {
	State     string `json:"state"` // second_factor, enroll or signed_in
	CSRFToken string `json:"csrf_token"`
}

// CodeRequest carries a one-time code: the second sign-in step, or the
// first code of an authenticator being enrolled.
type CodeRequest struct {
	Code string `json:"code"`
}

// SecondFactorResponse is the answer of the second sign-in step.
type SecondFactorResponse struct {
	State           string `json:"state"`
	UsedBackupCode  bool   `json:"used_backup_code"`
	BackupCodesLeft int    `json:"backup_codes_left"`
	CSRFToken       string `json:"csrf_token"`
}

// ReauthRequest re-verifies with a code, or with the password when the
// user has no second factor.
type ReauthRequest struct {
	Code     string `json:"code,omitempty"`
	Password string `json:"password,omitempty"`
}

// ReauthResponse says until when security changes are open.
type ReauthResponse struct {
	ReauthUntil time.Time `json:"reauth_until"`
	CSRFToken   string    `json:"csrf_token"`
}

// One's own account: /api/v1/me…, and the same for a user under
// /api/v1/users/{user}….

// ChangePasswordRequest is PUT /api/v1/me/password.
type ChangePasswordRequest struct {
	CurrentPassword    string `json:"current_password"`
	NewPassword        string `json:"new_password"`
	RevokeAppPasswords bool   `json:"revoke_app_passwords"`
}

// AppPasswordList lists a user's app passwords.
type AppPasswordList struct {
	AppPasswords []AppPasswordInfo `json:"app_passwords"`
}

// AppPasswordInfo is an app password with how many live sessions use it
// right now, counted by the live-session registry.
type AppPasswordInfo struct {
	authstore.AppPassword
	LiveSessions int `json:"live_sessions"`
}

// NewAppPasswordRequest creates an app password.
type NewAppPasswordRequest struct {
	Name      string               `json:"name"`
	Scopes    []authstore.Protocol `json:"scopes,omitempty"`
	ExpiresAt *time.Time           `json:"expires_at,omitempty"`
}

// NewAppPasswordResponse is a created app password with its secret, which
// no later answer shows.
type NewAppPasswordResponse struct {
	AppPassword authstore.AppPassword `json:"app_password"`
	Secret      string                `json:"secret"`
}

// MFAResponse is a user's two-step verification status.
type MFAResponse struct {
	Enabled         bool       `json:"enabled"`
	Pending         bool       `json:"pending"` // enrollment begun, not confirmed
	Source          string     `json:"source"`  // "self", "policy" or ""
	BackupCodesLeft int        `json:"backup_codes_left"`
	Required        bool       `json:"required"` // the organisation requires two-step
	GraceUntil      *time.Time `json:"grace_until,omitempty"`
}

// TOTPEnrollment is a begun authenticator enrollment.
type TOTPEnrollment struct {
	Secret     string `json:"secret"`
	OtpauthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"` // base64 PNG
}

// ConfirmResponse carries the first backup codes, and the new CSRF token
// when confirming completed an enrollment-only session's sign-in (the
// session id rotated).
type ConfirmResponse struct {
	BackupCodes []string `json:"backup_codes"`
	CSRFToken   string   `json:"csrf_token,omitempty"`
}

// BackupCodesResponse is a new set of backup codes, shown once.
type BackupCodesResponse struct {
	BackupCodes []string `json:"backup_codes"`
}

// EventList is a page of audit events, newest first.
type EventList struct {
	Events     []authstore.Event `json:"events"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// Accounts: /api/v1/users….

// UserList lists the accounts.
type UserList struct {
	Users []authstore.User `json:"users"`
}

// NewUserRequest creates an account.
type NewUserRequest struct {
	Username    string         `json:"username"`
	Password    string         `json:"password,omitempty"` // empty: one is generated and answered once
	DisplayName string         `json:"display_name,omitempty"`
	Email       string         `json:"email,omitempty"`
	Role        authstore.Role `json:"role,omitempty"`
}

// NewUserResponse is a created account.
type NewUserResponse struct {
	User     authstore.User `json:"user"`
	Password string         `json:"password,omitempty"` // the generated password, shown once
}

// UpdateUserRequest changes the fields it carries.
type UpdateUserRequest struct {
	DisplayName *string         `json:"display_name,omitempty"`
	Email       *string         `json:"email,omitempty"`
	Role        *authstore.Role `json:"role,omitempty"`
	Disabled    *bool           `json:"disabled,omitempty"`
}

// SetPasswordRequest is an administrator's PUT
// /api/v1/users/{user}/password.
type SetPasswordRequest struct {
	Password           string `json:"password"`
	RevokeAppPasswords bool   `json:"revoke_app_passwords"`
}

// AdminCodeRequest issues a one-time code for a locked-out user.
type AdminCodeRequest struct {
	TTL string `json:"ttl,omitempty"` // "72h", "3d"; default policy.admin_code_ttl
}

// AdminCodeResponse is an issued one-time code, shown once.
type AdminCodeResponse struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UpstreamPasswordRequest carries the password postern logs in upstream
// with for a user when the upstream's login is "stored". It is written
// once: no answer, listing or log shows it again (an account only says
// has_upstream_password).
type UpstreamPasswordRequest struct {
	Password string `json:"password"`
}

// The organisation: policy, live sessions, audit and tokens.

// PolicyResponse is the organisation's two-step policy.
type PolicyResponse struct {
	MFARequired bool       `json:"mfa_required"`
	GraceUntil  *time.Time `json:"grace_until"`
	NotEnrolled int        `json:"not_enrolled"` // users without a second factor
}

// PolicyRequest sets the two-step policy.
type PolicyRequest struct {
	MFARequired bool       `json:"mfa_required"`
	GraceUntil  *time.Time `json:"grace_until,omitempty"`
}

// LiveSession is one live mail or calendar session.
type LiveSession struct {
	ID              string             `json:"id"`
	User            string             `json:"user"`
	Protocol        authstore.Protocol `json:"protocol"`
	AppPasswordID   string             `json:"app_password_id,omitempty"` // empty: the account password
	AppPasswordName string             `json:"app_password_name,omitempty"`
	Remote          string             `json:"remote"`
	Client          string             `json:"client,omitempty"`
	Started         time.Time          `json:"started"`
	BytesIn         int64              `json:"bytes_in"`
	BytesOut        int64              `json:"bytes_out"`
}

// SessionList is the answer of GET /api/v1/sessions.
type SessionList struct {
	Sessions []LiveSession `json:"sessions"`
}

// EndedSessions is the answer of DELETE /api/v1/users/{user}/sessions.
type EndedSessions struct {
	Ended int `json:"ended"`
}

// VerifyResponse is the check of the audit log's hash chain.
type VerifyResponse struct {
	OK     bool   `json:"ok"`
	Events int    `json:"events"`
	Error  string `json:"error,omitempty"`
}

// TokenList lists the API tokens, never their secrets.
type TokenList struct {
	Tokens []authstore.Token `json:"tokens"`
}

// NewTokenRequest creates an API token.
type NewTokenRequest struct {
	Name      string         `json:"name"`
	Role      authstore.Role `json:"role"`
	User      string         `json:"user,omitempty"`
	ExpiresAt *time.Time     `json:"expires_at,omitempty"`
}

// NewTokenResponse is a created token with its secret, shown once.
type NewTokenResponse struct {
	Token  authstore.Token `json:"token"`
	Secret string          `json:"secret"` // pst_…
}

// Open routes.

// HealthResponse is GET /healthz.
type HealthResponse struct {
	Status string `json:"status"`
}

// ReadyResponse is GET /readyz, with 200 or 503.
type ReadyResponse struct {
	Ready bool `json:"ready"`
	// Store is false when the store could not be read.
	Store bool `json:"store"`
	// Failing names the upstreams whose last probe failed.
	Failing []string `json:"failing"`
}

// OpenAPIResponse is the API's OpenAPI 3.1 document.
type OpenAPIResponse map[string]any

// Backups: /api/v1/store/backup

// BackupRequest asks for a hot backup encrypted to age recipients. There
// is no passphrase field: the server must never hold what decrypts its
// backups. A CLI backing up under a passphrase sends a one-time recipient
// of its own and re-encrypts the stream in its memory.
type BackupRequest struct {
	Recipients []string `json:"recipients"`
}

// Trailers of a backup answer: the stream is only whole when BackupStatus
// says "ok" after the last byte, and BackupInfo then holds the
// authstore.BackupInfo as JSON.
const (
	BackupStatus = "Postern-Backup-Status"
	BackupInfo   = "Postern-Backup-Info"
)
