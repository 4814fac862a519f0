package admin

// apiRoutes is the /api/v1 table.
func (s *Server) apiRoutes() []Route {
	var rs []Route
	rs = append(rs, s.signInRoutes()...)
	return rs
}
