package admin

// apiRoutes is the /api/v1 table.
func (s *Server) apiRoutes() []route {
	var rs []route
	for _, group := range [][]route{
		s.signInRoutes(), s.userRoutes(), s.appPasswordRoutes(), s.mfaRoutes(), s.upstreamRoutes(),
		s.policyRoutes(), s.liveSessionRoutes(), s.auditRoutes(), s.tokenRoutes(), s.backupRoutes(),
	} {
		rs = append(rs, group...)
	}
	return rs
}
