package admin

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/postern-dev/postern/admin/api"
)

// enrollView is an enrollment ready for the template: the secret grouped
// in fours for reading, the link only when it is an otpauth URI (which
// html/template would otherwise neutralise as an unknown scheme).
type enrollView struct {
	Secret string
	Raw    string
	URI    template.URL
}

func viewEnrollment(e api.TOTPEnrollment) enrollView {
	raw := strings.ToUpper(strings.Join(strings.Fields(e.Secret), ""))
	var groups []string
	for i := 0; i < len(raw); i += 4 {
		groups = append(groups, raw[i:min(i+4, len(raw))])
	}
	v := enrollView{Secret: strings.Join(groups, " "), Raw: raw}
	if strings.HasPrefix(e.OtpauthURI, "otpauth://totp/") {
		v.URI = template.URL(e.OtpauthURI)
	}
	return v
}

func (c *pageCall) enrollIntro() {
	m, err := c.p.srv.mfaStatus(c.ctx, c.who, c.who.User)
	if err != nil {
		c.failed(err)
		return
	}
	c.render(http.StatusOK, "enroll-intro", "Set up two-step verification", m)
}

func (c *pageCall) enrollBegin() {
	e, err := c.p.srv.beginTOTP(c.ctx, c.who)
	if err != nil {
		c.actionFailed(err)
		return
	}
	c.render(http.StatusOK, "enroll", "Set up two-step verification", viewEnrollment(e))
}

// enrollQR is the QR code of the enrollment this session began; only that
// session gets it.
func (c *pageCall) enrollQR() {
	png, err := c.p.srv.enrollmentQR(c.who)
	if err != nil {
		c.failed(err)
		return
	}
	c.w.Header().Set("Content-Type", "image/png")
	c.w.Write(png)
}

func (c *pageCall) enrollConfirm() {
	res, next, err := c.p.srv.confirmTOTP(c.ctx, c.who, c.form.Get("code"))
	if err != nil {
		if mistyped(err) {
			// Show the same secret again: the enrollment is still open.
			e := api.TOTPEnrollment{Secret: c.form.Get("secret"), OtpauthURI: c.form.Get("uri")}
			c.errMsg = "That code did not work. Type the 6 digits your app shows now for postern."
			c.render(http.StatusUnprocessableEntity, "enroll", "Set up two-step verification", viewEnrollment(e))
			return
		}
		c.failed(err)
		return
	}
	if next != nil {
		setSessionCookie(c.w, next)
		c.as(c.who.rotated(next))
	}
	c.render(http.StatusOK, "backup-codes", "Your backup codes", backupCodes{Codes: res.BackupCodes, First: true})
}
