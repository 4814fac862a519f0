package admin

import (
	"net/http"
	"strings"
)

// backupCodes is a set of codes shown once.
type backupCodes struct {
	Codes []string
	First bool // right after turning two-step verification on
}

func (c *pageCall) backupGenerate() {
	out, err := c.p.srv.newBackupCodes(c.ctx, c.who)
	if err != nil {
		c.actionFailed(err)
		return
	}
	c.render(http.StatusOK, "backup-codes", "Your new backup codes", backupCodes{Codes: out.BackupCodes})
}

// backupDownload hands the codes the page shows back as a text file, so
// saving them needs no script. It only echoes what the form carried, and
// only digits and spaces.
func (c *pageCall) backupDownload() {
	var b strings.Builder
	b.WriteString("postern backup codes: each works once, in place of a code from your authenticator app.\n\n")
	n := 0
	for _, code := range c.form["code"] {
		if code == "" || len(code) > 20 || strings.Trim(code, "0123456789 ") != "" {
			c.fail(http.StatusBadRequest, "invalid", "The codes to download are not backup codes.")
			return
		}
		b.WriteString(code + "\n")
		n++
	}
	if n == 0 {
		c.fail(http.StatusBadRequest, "invalid", "There are no codes to download.")
		return
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.Header().Set("Content-Disposition", `attachment; filename="postern-backup-codes.txt"`)
	c.w.Write([]byte(b.String()))
}
