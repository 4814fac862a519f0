// Package certs owns the TLS server configuration of postern's listeners:
// PEM certificate/key pairs chosen by SNI, hot reload when the files change
// or on SIGHUP, and a self-signed pair for demo and development setups.
//
// It must not know about listeners or protocols: callers take a *tls.Config
// from TLSConfig and use it however they serve. A failed reload never takes
// a working certificate away; the old pairs keep serving until new ones load.
package certs
