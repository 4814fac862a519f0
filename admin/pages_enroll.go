package admin

import (
	"net/http"
	"strings"
)

func (p *Pages) enrollRoutes() []pageRoute {
	return []pageRoute{
		{"GET /enroll", (*pageCall).enrollIntro},
		{"POST /enroll", (*pageCall).enrollBegin},
		{"GET /enroll/qr.png", (*pageCall).enrollQR},
		{"POST /enroll/confirm", (*pageCall).enrollConfirm},
	}
}

// enrollment is a begun TOTP enrollment as the page shows it.
type enrollment struct {
	Secret string `json:"secret"` // grouped in fours
	URI    string `json:"otpauth_uri"`
}

func (c *pageCall) enrollIntro() {
	if !c.signedIn() {
		return
	}
	c.render(http.StatusOK, "enroll-intro", "Set up two-step verification", nil)
}

func (c *pageCall) enrollBegin() {
	var e enrollment
	if err := c.api(http.MethodPost, "/me/mfa/totp", nil, &e); err != nil {
		c.actionFailed(err)
		return
	}
	c.signedIn()
	c.render(http.StatusOK, "enroll", "Set up two-step verification", e)
}

// enrollQR is the QR code of the enrollment this session began; the API
// serves it to that session only.
func (c *pageCall) enrollQR() {
	var png []byte
	if err := c.api(http.MethodGet, "/me/mfa/totp/qr.png", nil, &png); err != nil {
		c.apiFailed(err)
		return
	}
	c.w.Header().Set("Content-Type", "image/png")
	c.w.Write(png)
}

func (c *pageCall) enrollConfirm() {
	var out struct {
		BackupCodes []string `json:"backup_codes"`
	}
	if err := c.api(http.MethodPost, "/me/mfa/totp/confirm", map[string]string{"code": c.r.PostFormValue("code")}, &out); err != nil {
		if s := statusOf(err); s == http.StatusUnprocessableEntity || s == http.StatusBadRequest || s == http.StatusConflict {
			// Show the same secret again: the enrollment is still open.
			e := enrollment{Secret: c.r.PostFormValue("secret"), URI: c.r.PostFormValue("uri")}
			if !strings.HasPrefix(e.URI, "otpauth://") {
				e.URI = ""
			}
			c.signedIn()
			c.errMsg = "That code did not work. Type the 6 digits your app shows now for postern."
			c.render(http.StatusUnprocessableEntity, "enroll", "Set up two-step verification", e)
			return
		}
		c.apiFailed(err)
		return
	}
	c.signedIn()
	c.render(http.StatusOK, "backup-codes", "Your backup codes", backupCodes{Codes: out.BackupCodes, First: true})
}
