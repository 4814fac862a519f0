package admin

// apiRoutes is the /api/v1 table.
func (s *Server) apiRoutes() []Route {
	var rs []Route
	rs = append(rs, s.signInRoutes()...)
	rs = append(rs, s.selfRoutes()...)
	rs = append(rs, s.userRoutes()...)
	rs = append(rs, s.upstreamRoutes()...)
	rs = append(rs, s.opsRoutes()...)
	rs = append(rs, s.backupRoutes()...)
	return rs
}
