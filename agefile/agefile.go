// Package agefile writes and reads standard age files (age-encryption.org/v1),
// so that what postern encrypts an operator can also open with the age
// tool. It owns the two ways to lock a file, a passphrase (age's scrypt
// recipient) or public X25519 recipients, and the errors that tell a wrong
// key from a damaged file. It never stores a passphrase or an identity.
package agefile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
)

// MinPassphrase is the shortest passphrase accepted for a new file: a
// backup holds every password hash, so its passphrase is what stands
// between a stolen copy and an offline guessing run.
const MinPassphrase = 12

// Errors a caller can tell apart with errors.Is.
var (
	// ErrWrongKey: the passphrase or identities given do not open the file.
	ErrWrongKey = errors.New("wrong passphrase or identity: it does not open this file")
	// ErrDamaged: the file is not a whole, unaltered age file.
	ErrDamaged = errors.New("the file is damaged or is not an age file")
)

// Lock is how a new file is encrypted: exactly one of a passphrase or one
// or more recipients ("age1…").
type Lock struct {
	Passphrase string
	Recipients []string
	// scryptLogN overrides age's work factor; tests only.
	scryptLogN int
}

// Check reports what is wrong with l before any work is done.
func (l Lock) Check() error {
	_, err := l.recipients()
	return err
}

func (l Lock) recipients() ([]age.Recipient, error) {
	switch {
	case l.Passphrase != "" && len(l.Recipients) > 0:
		return nil, errors.New("give a passphrase or recipients, not both")
	case l.Passphrase != "":
		if utf8.RuneCountInString(l.Passphrase) < MinPassphrase {
			return nil, fmt.Errorf("the passphrase must be at least %d characters", MinPassphrase)
		}
		r, err := age.NewScryptRecipient(l.Passphrase)
		if err != nil {
			return nil, err
		}
		if l.scryptLogN > 0 {
			r.SetWorkFactor(l.scryptLogN)
		}
		return []age.Recipient{r}, nil
	case len(l.Recipients) > 0:
		return ParseRecipients(l.Recipients)
	default:
		return nil, errors.New("no passphrase and no recipient")
	}
}

// ParseRecipients reads age X25519 recipients ("age1…"), refusing
// duplicates and anything else.
func ParseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	seen := map[string]bool{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: not an age public key (age1…)", clip(s))
		}
		if seen[s] {
			return nil, fmt.Errorf("recipient %q: given twice", clip(s))
		}
		seen[s] = true
		out = append(out, r)
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Encrypt returns a writer that encrypts to dst under l; Close finishes
// the file (its last chunk and tag) and must be checked.
func Encrypt(dst io.Writer, l Lock) (io.WriteCloser, error) {
	rs, err := l.recipients()
	if err != nil {
		return nil, err
	}
	w, err := age.Encrypt(dst, rs...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return w, nil
}

// Key opens a file: a passphrase, or the contents of an age identity file
// (lines "AGE-SECRET-KEY-1…", comments allowed).
type Key struct {
	Passphrase string
	Identities []byte
}

func (k Key) identities() ([]age.Identity, error) {
	switch {
	case k.Passphrase != "" && len(k.Identities) > 0:
		return nil, errors.New("give a passphrase or an identity file, not both")
	case k.Passphrase != "":
		id, err := age.NewScryptIdentity(k.Passphrase)
		if err != nil {
			return nil, err
		}
		return []age.Identity{id}, nil
	case len(k.Identities) > 0:
		ids, err := age.ParseIdentities(bytes.NewReader(k.Identities))
		if err != nil {
			return nil, errors.New("the identity file holds no age secret key (AGE-SECRET-KEY-1…)")
		}
		return ids, nil
	default:
		return nil, errors.New("no passphrase and no identity")
	}
}

// Decrypt returns a reader of src's plaintext. A wrong key is reported
// here as ErrWrongKey. The payload is authenticated chunk by chunk as it
// is read, so damage further in surfaces from Read as ErrDamaged: a caller
// must read to the end before trusting any of it.
func Decrypt(src io.Reader, k Key) (io.Reader, error) {
	ids, err := k.identities()
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(src, ids...)
	var miss *age.NoIdentityMatchError
	switch {
	case errors.As(err, &miss):
		if slices.Contains(miss.StanzaTypes, "scrypt") && k.Passphrase == "" {
			return nil, fmt.Errorf("%w: it was encrypted with a passphrase", ErrWrongKey)
		}
		if !slices.Contains(miss.StanzaTypes, "scrypt") && k.Passphrase != "" {
			return nil, fmt.Errorf("%w: it was encrypted to public keys; give the identity file", ErrWrongKey)
		}
		return nil, ErrWrongKey
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return damageReader{r}, nil
}

// damageReader names a failed chunk for what it is.
type damageReader struct{ r io.Reader }

func (d damageReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return n, err
}

// ReadPrivateFile reads a file that holds a secret (a passphrase, an
// identity), refusing one that group or others can read.
func ReadPrivateFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %04o); run `chmod 600 %s`", path, st.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}

// ReadPassphraseFile reads a passphrase from a private file: its first
// line, without the line break.
func ReadPassphraseFile(path string) (string, error) {
	data, err := ReadPrivateFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s: the first line is empty", path)
	}
	return line, nil
}

// Fingerprint names a set of recipients, in any order, by the first 12 hex
// digits of the SHA-256 of the sorted list: scheduled backups carry it in
// their file names, so those made for an older set can be found.
func Fingerprint(recipients []string) string {
	list := make([]string, len(recipients))
	for i, r := range recipients {
		list[i] = strings.TrimSpace(r)
	}
	slices.Sort(list)
	sum := sha256.Sum256([]byte(strings.Join(list, "\n")))
	return hex.EncodeToString(sum[:6])
}

// OneTime makes a fresh X25519 key pair that lives only in this process:
// a CLI asks a server for a backup encrypted to the public half, opens the
// stream with the private half in memory, and re-encrypts it under a
// passphrase, so the passphrase never leaves the CLI and no plaintext
// touches a disk or a socket.
func OneTime() (recipient string, key Key, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", Key{}, err
	}
	return id.Recipient().String(), Key{Identities: []byte(id.String())}, nil
}

// WriteNew writes a new private file (mode 0600) at path through fill: it
// refuses an existing path, writes beside it, syncs, and links it into
// place, so a failed write never leaves a partial file under the name.
func WriteNew(path string, fill func(w io.Writer) error) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; choose another name or remove it first", path)
	}
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path) // unlike a rename, never replaces a file made meanwhile
	}
	os.Remove(tmp)
	return err
}
