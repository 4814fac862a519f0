package admin

import "time"

// The API's answers as the pages read them (BRIEF: the /api/v1 contract).

type apiUser struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled"`
	Created     time.Time `json:"created"`
	MFA         *apiMFA   `json:"mfa,omitempty"`
}

// IsAdmin reports whether the user may open the admin console.
func (u *apiUser) IsAdmin() bool { return u != nil && u.Role == "admin" }

type apiMFA struct {
	Enabled         bool   `json:"enabled"`
	Source          string `json:"source"` // "self", "policy" or ""
	BackupCodesLeft int    `json:"backup_codes_left"`
	Required        bool   `json:"required"`
}

type apiAppPassword struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	Created    time.Time  `json:"created"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsed   *time.Time `json:"last_used"`
	LastIP     string     `json:"last_ip"`
	LastClient string     `json:"last_client"`
	Sessions   int        `json:"sessions"`
}

type apiEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Actor    string    `json:"actor"`
	Source   string    `json:"source"`
	User     string    `json:"user"`
	Protocol string    `json:"protocol"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
	Detail   string    `json:"detail"`
}

type apiSession struct {
	ID              string    `json:"id"`
	User            string    `json:"user"`
	Protocol        string    `json:"protocol"`
	AppPasswordID   string    `json:"app_password_id"`
	AppPasswordName string    `json:"app_password_name"`
	Remote          string    `json:"remote"`
	Client          string    `json:"client"`
	Started         time.Time `json:"started"`
	BytesIn         int64     `json:"bytes_in"`
	BytesOut        int64     `json:"bytes_out"`
}

type apiPolicy struct {
	MFARequired bool       `json:"mfa_required"`
	GraceUntil  *time.Time `json:"grace_until"`
	NotEnrolled int        `json:"not_enrolled"`
}

type apiToken struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	User      string     `json:"user"`
	Created   time.Time  `json:"created"`
	ExpiresAt *time.Time `json:"expires_at"`
	LastUsed  *time.Time `json:"last_used"`
}
