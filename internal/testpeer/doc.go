// Package testpeer starts upstream servers for postern's tests: real
// Dovecot, Radicale, Postfix, PostgreSQL (with a streaming standby) and
// SOGo (ActiveSync, CalDAV, CardDAV) instances in private temporary
// directories on loopback, and hostile or broken upstreams for fault
// tests. It also holds a small ActiveSync client whose bodies libwbxml's
// own converters encode and decode. It is for tests only; the in-process
// IMAP server the demo runs is internal/memimap.
//
// Nothing here touches a system-wide installation: every real server gets
// its own configuration, runtime directory, state, log and ports, and is
// stopped when the test that started it ends. Tests that need a real server
// call RequirePeer, which skips them when the binary is missing unless
// POSTERN_REQUIRE_PEERS=1 demands it.
package testpeer
