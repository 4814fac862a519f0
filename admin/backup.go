package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/agefile"
)

// backupRoutes serve the hot backup to administrators: the CLI over the
// control socket, admin tokens (an off-host backup job), and admin web
// sessions within their re-verification window. A copy holds every
// password hash, but an administrator can already set any password; what
// it cannot do is decrypt a copy without the identity it names.
func (s *Server) backupRoutes() []route {
	return []route{
		{Method: "POST", Path: "/api/v1/store/backup", Access: accessAdmin, Reauth: true, Produces: "application/octet-stream",
			Handle:  writesIn(func(c *apiCall, in *api.BackupRequest) error { return s.backup(c.W, c.R, in) }),
			Summary: "A consistent copy of the store as an age file for the given recipients"},
	}
}

// backup streams the copy; the answer's trailer says whether it is whole.
func (s *Server) backup(w http.ResponseWriter, r *http.Request, in *api.BackupRequest) error {
	lock := agefile.Lock{Recipients: in.Recipients}
	if err := lock.Check(); err != nil {
		return invalid(err.Error())
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", api.BackupStatus+", "+api.BackupInfo)
	w.WriteHeader(http.StatusOK)
	enc, err := agefile.Encrypt(w, lock)
	if err == nil {
		detail := fmt.Sprintf("recipients=%s", agefile.Fingerprint(in.Recipients))
		info, berr := s.store.Backup(r.Context(), enc, detail)
		if err = berr; err == nil {
			err = enc.Close()
		}
		if err == nil {
			data, _ := json.Marshal(info)
			w.Header().Set(api.BackupInfo, string(data))
		}
	}
	status := "ok"
	if err != nil {
		s.log.Error("backup failed", "err", err)
		status = "failed"
	}
	w.Header().Set(api.BackupStatus, status)
	return nil
}
