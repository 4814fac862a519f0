package admin

import (
	"html/template"
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
	Secret string `json:"secret"`
	URI    string `json:"otpauth_uri"`
}

// enrollView is an enrollment ready for the template: the secret grouped
// in fours for reading, the link only when it is an otpauth URI (which
// html/template would otherwise neutralise as an unknown scheme).
type enrollView struct {
	Secret string
	Raw    string
	URI    template.URL
}

func (e enrollment) view() enrollView {
	raw := strings.ToUpper(strings.Join(strings.Fields(e.Secret), ""))
	var groups []string
	for i := 0; i < len(raw); i += 4 {
		groups = append(groups, raw[i:min(i+4, len(raw))])
	}
	v := enrollView{Secret: strings.Join(groups, " "), Raw: raw}
	if strings.HasPrefix(e.URI, "otpauth://totp/") {
		v.URI = template.URL(e.URI)
	}
	return v
}

func (c *pageCall) enrollIntro() {
	if !c.signedIn() {
		return
	}
	var m apiMFA
	if err := c.api(http.MethodGet, "/me/mfa", nil, &m); err != nil {
		c.apiFailed(err)
		return
	}
	c.render(http.StatusOK, "enroll-intro", "Set up two-step verification", m)
}

func (c *pageCall) enrollBegin() {
	var e enrollment
	if err := c.api(http.MethodPost, "/me/mfa/totp", nil, &e); err != nil {
		c.actionFailed(err)
		return
	}
	c.signedIn()
	c.render(http.StatusOK, "enroll", "Set up two-step verification", e.view())
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
		if refused(err) && answerStatus(err) != http.StatusUnauthorized {
			// Show the same secret again: the enrollment is still open.
			e := enrollment{Secret: c.r.PostFormValue("secret"), URI: c.r.PostFormValue("uri")}
			c.signedIn()
			c.errMsg = "That code did not work. Type the 6 digits your app shows now for postern."
			c.render(http.StatusUnprocessableEntity, "enroll", "Set up two-step verification", e.view())
			return
		}
		c.apiFailed(err)
		return
	}
	c.signedIn()
	c.render(http.StatusOK, "backup-codes", "Your backup codes", backupCodes{Codes: out.BackupCodes, First: true})
}
