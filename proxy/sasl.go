package proxy

import (
	"encoding/base64"
	"errors"

	"github.com/emersion/go-sasl"
)

// errSASLEncoding marks a SASL response that is not strict base64.
var errSASLEncoding = errors.New("sasl response is not valid base64")

// DecodeSASL decodes one base64 SASL response, as IMAP AUTHENTICATE and
// POP3 AUTH carry it (RFC 4422 section 3.3): the standard alphabet with
// padding and nothing else, so that one message has one encoding. The
// protocols' special forms ("=" for an empty initial response, "*" to
// cancel) are the callers' to handle first.
func DecodeSASL(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(s) != base64.StdEncoding.EncodedLen(len(b)) {
		// EncodedLen catches the CR and LF that DecodeString skips.
		return nil, errSASLEncoding
	}
	return b, nil
}

// ParsePlain splits a SASL PLAIN message (RFC 4616) with go-sasl's server:
// exactly authzid NUL authcid NUL password.
func ParsePlain(msg []byte) (authzid, authcid, password string, err error) {
	if msg == nil {
		msg = []byte{} // go-sasl reads nil as "no initial response yet"
	}
	srv := sasl.NewPlainServer(func(identity, username, pw string) error {
		authzid, authcid, password = identity, username, pw
		return nil
	})
	if _, _, err := srv.Next(msg); err != nil {
		return "", "", "", err
	}
	return authzid, authcid, password, nil
}
