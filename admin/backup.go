package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/postern-dev/postern/agefile"
)

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

// backupRoutes serve the hot backup to administrators: the CLI over the
// control socket, admin tokens (an off-host backup job), and admin web
// sessions within their re-verification window. A copy holds every
// password hash, but an administrator can already set any password; what
// it cannot do is decrypt a copy without the identity it names.
func (s *Server) backupRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/api/v1/store/backup", Access: Admin, Reauth: true, Handle: s.backup,
			In: typeOf[BackupRequest](), Produces: "application/octet-stream",
			Summary: "A consistent copy of the store as an age file for the given recipients"},
	}
}

func (s *Server) backup(c *Call) (any, error) {
	in := c.In.(*BackupRequest)
	lock := agefile.Lock{Recipients: in.Recipients}
	if err := lock.Check(); err != nil {
		return nil, invalid(err.Error())
	}
	c.W.Header().Set("Content-Type", "application/octet-stream")
	c.W.Header().Set("Trailer", BackupStatus+", "+BackupInfo)
	c.W.WriteHeader(http.StatusOK)
	enc, err := agefile.Encrypt(c.W, lock)
	if err == nil {
		detail := fmt.Sprintf("recipients=%s", agefile.Fingerprint(in.Recipients))
		info, berr := s.store.Backup(c.R.Context(), enc, detail)
		if err = berr; err == nil {
			err = enc.Close()
		}
		if err == nil {
			data, _ := json.Marshal(info)
			c.W.Header().Set(BackupInfo, string(data))
		}
	}
	status := "ok"
	if err != nil {
		s.log.Error("backup failed", "err", err)
		status = "failed"
	}
	c.W.Header().Set(BackupStatus, status)
	return handled, nil
}
