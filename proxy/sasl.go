package proxy

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/postern-dev/postern/authstore"
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

// Failures of a SASL exchange that the front-end answers itself, before
// any credential is judged.
var (
	ErrSASLCanceled  = errors.New("sasl exchange canceled by the client")
	ErrSASLMechanism = errors.New("sasl mechanism not supported")
)

// LOGIN's challenges (draft-murchison-sasl-login), base64 as sent; real
// clients expect them verbatim.
const (
	saslLoginUser = "VXNlcm5hbWU6" // "Username:"
	saslLoginPass = "UGFzc3dvcmQ6" // "Password:"
)

// SASLReplies are a front-end's answers to an AUTH exchange that ended
// without a credential.
type SASLReplies[T any] struct {
	Mechanism, Canceled, Encoding T
	// Failure is the one answer to every credential problem
	// (A9): a malformed or borrowed identity fails like a wrong password.
	Failure T
}

// For picks the answer to an error of SASLDialogue.Run; ok is false for
// any other error (the client left), which ends the dialogue.
func (r SASLReplies[T]) For(err error) (reply T, ok bool) {
	switch {
	case errors.Is(err, ErrSASLMechanism):
		return r.Mechanism, true
	case errors.Is(err, ErrSASLCanceled):
		return r.Canceled, true
	case errors.Is(err, errSASLEncoding):
		return r.Encoding, true
	case errors.Is(err, authstore.ErrUnauthorized):
		return r.Failure, true
	}
	return reply, false
}

// SASLDialogue is the server side of AUTH PLAIN and AUTH LOGIN as SMTP
// (RFC 4954) and POP3 (RFC 5034) carry them: one base64 response per line,
// "=" for an empty response, "*" to cancel.
type SASLDialogue struct {
	// Challenge sends a continuation carrying text (base64; empty for
	// PLAIN's empty challenge) and returns the client's response line.
	Challenge func(text string) ([]byte, error)
}

// Run runs mech (any case) from its initial response ir, which hasIR tells
// apart from an absent one. It returns the credential, or Challenge's
// error, ErrSASLCanceled, errSASLEncoding, ErrSASLMechanism, or
// authstore.ErrUnauthorized for what can never be a valid login: a
// malformed PLAIN message, an authorization identity other than the user
// (acting as someone else is not ours to grant), and an empty part or one
// holding CR, LF or NUL (P4).
func (d SASLDialogue) Run(mech, ir string, hasIR bool) (user, secret string, err error) {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		user, secret, err = d.plain(ir, hasIR)
	case "LOGIN":
		user, secret, err = d.login(ir, hasIR)
	default:
		return "", "", ErrSASLMechanism
	}
	if err == nil && (!ValidCredential(user) || !ValidCredential(secret)) {
		err = authstore.ErrUnauthorized
	}
	return user, secret, err
}

func (d SASLDialogue) plain(ir string, hasIR bool) (user, secret string, err error) {
	msg, err := d.response(ir, hasIR, "")
	if err != nil {
		return "", "", err
	}
	authzid, authcid, password, err := ParsePlain(msg)
	if err != nil || (authzid != "" && authzid != authcid) {
		return "", "", authstore.ErrUnauthorized
	}
	return authcid, password, nil
}

func (d SASLDialogue) login(ir string, hasIR bool) (user, secret string, err error) {
	name, err := d.response(ir, hasIR, saslLoginUser)
	if err != nil {
		return "", "", err
	}
	pass, err := d.response("", false, saslLoginPass)
	if err != nil {
		return "", "", err
	}
	return string(name), string(pass), nil
}

// response decodes the initial response when there is one, and otherwise
// asks for one with the challenge text.
func (d SASLDialogue) response(ir string, hasIR bool, text string) ([]byte, error) {
	if !hasIR {
		line, err := d.Challenge(text)
		if err != nil {
			return nil, err
		}
		if string(line) == "*" {
			return nil, ErrSASLCanceled
		}
		ir = string(line)
	}
	if ir == "=" {
		return []byte{}, nil
	}
	return DecodeSASL(ir)
}
