package imap

import (
	"encoding/base64"
	"strings"

	"github.com/postern-dev/postern/proxy"
)

// authenticate reads AUTHENTICATE PLAIN or LOGIN (RFC 9051 section 6.2.2),
// with or without an initial response (SASL-IR, RFC 4959).
func (f *frontend) authenticate(tag string) (proxy.Login, bool, error) {
	f.sensitive = true
	mech, ir, err := f.authenticateArgs()
	if err != nil {
		return proxy.Login{}, false, err
	}
	if !f.secure {
		// Refused before any challenge, so the client sends nothing more.
		return proxy.Login{}, false, errPrivacyRequired
	}
	var user, secret string
	switch mech {
	case "PLAIN":
		user, secret, err = f.saslPlain(ir)
	case "LOGIN":
		user, secret, err = f.saslLogin(ir)
	default:
		err = errMechanism
	}
	if err != nil {
		return proxy.Login{}, false, err
	}
	return f.credential(tag, user, secret)
}

// authenticateArgs reads the mechanism and the initial response, if any
// (nil when absent).
func (f *frontend) authenticateArgs() (mech string, ir []byte, err error) {
	if err = f.dec.sp(); err != nil {
		return "", nil, err
	}
	if mech, err = f.dec.atom(false); err != nil {
		return "", nil, err
	}
	b, err := f.dec.peek()
	if err != nil {
		return "", nil, err
	}
	if b != ' ' {
		return strings.ToUpper(mech), nil, f.dec.crlf()
	}
	_, _ = f.dec.readByte()
	encoded, err := f.dec.restOfLine()
	if err != nil {
		return "", nil, err
	}
	if ir, err = decodeInitialResponse(encoded); err != nil {
		return "", nil, err
	}
	return strings.ToUpper(mech), ir, nil
}

func (f *frontend) saslPlain(ir []byte) (user, secret string, err error) {
	msg := ir
	if msg == nil {
		if msg, err = f.challenge(""); err != nil {
			return "", "", err
		}
	}
	return decodePlain(msg)
}

// saslLogin runs the LOGIN mechanism (draft-murchison-sasl-login), whose
// challenges real clients expect verbatim.
func (f *frontend) saslLogin(ir []byte) (user, secret string, err error) {
	name := ir
	if name == nil {
		if name, err = f.challenge("Username:"); err != nil {
			return "", "", err
		}
	}
	pass, err := f.challenge("Password:")
	if err != nil {
		return "", "", err
	}
	return string(name), string(pass), nil
}

// challenge sends a continuation and reads the client's response line.
func (f *frontend) challenge(text string) ([]byte, error) {
	if err := f.send("+ " + base64.StdEncoding.EncodeToString([]byte(text)) + "\r\n"); err != nil {
		return nil, err
	}
	f.dec.nextLine()
	line, err := f.dec.restOfLine()
	if err != nil {
		return nil, err
	}
	return decodeResponse(line)
}
