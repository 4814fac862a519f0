package imap

import (
	"unicode/utf8"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// decodeResponse decodes one SASL response line of AUTHENTICATE (RFC 9051
// section 6.2.2): strict base64, or "*" to cancel. Both a cancel and bad
// base64 must be answered BAD.
func decodeResponse(line []byte) ([]byte, error) {
	if string(line) == "*" {
		return nil, errCancelled
	}
	b, err := proxy.DecodeSASL(string(line))
	if err != nil {
		return nil, errSyntax
	}
	return b, nil
}

// decodeInitialResponse decodes a SASL-IR argument (RFC 4959): "=" is an
// empty response.
func decodeInitialResponse(ir []byte) ([]byte, error) {
	if string(ir) == "=" {
		return []byte{}, nil
	}
	if string(ir) == "*" {
		return nil, errSyntax
	}
	return decodeResponse(ir)
}

// decodePlain splits a SASL PLAIN message (RFC 4616) strictly: exactly
// authzid NUL authcid NUL passwd, in UTF-8. A malformed message, and an
// authzid naming someone other than the authcid, get the credential
// failure: a client may not ask to act as another user.
func decodePlain(msg []byte) (user, secret string, err error) {
	authzid, authcid, passwd, err := proxy.ParsePlain(msg)
	if err != nil || !utf8.Valid(msg) {
		return "", "", authstore.ErrUnauthorized
	}
	if authzid != "" && authzid != authcid {
		return "", "", authstore.ErrUnauthorized
	}
	if err := checkCredential(authcid, passwd); err != nil {
		return "", "", err
	}
	return authcid, passwd, nil
}

// checkCredential refuses what can never be a valid login before anyone
// verifies it: empty parts and CR, LF or NUL, which must never reach an
// upstream or a log line (P4).
func checkCredential(user, secret string) error {
	if !proxy.ValidCredential(user) || !proxy.ValidCredential(secret) {
		return authstore.ErrUnauthorized
	}
	return nil
}
