// Package testpeer starts upstream servers for postern's tests and demo:
// real Dovecot (and later Radicale) instances in private temporary
// directories on loopback, an in-process IMAP server, and hostile or broken
// upstreams for fault tests.
//
// Nothing here touches a system-wide installation: every real server gets
// its own configuration, runtime directory, state, log and ports, and is
// stopped when the test that started it ends. Tests that need a real server
// call RequirePeer, which skips them when the binary is missing unless
// POSTERN_REQUIRE_PEERS=1 demands it.
package testpeer
