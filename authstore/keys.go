package authstore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Keys are the secrets that never enter the database or a backup: the
// pepper for app-password and token digests, and the sealing key for TOTP
// secrets and upstream credentials. Versioned so a rotation can keep old
// versions around for opening what was sealed before.
type Keys struct {
	Version int
	Pepper  []byte // 32 bytes
	Seal    []byte // 32 bytes
}

type keyFile struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Pepper  string `json:"pepper"`
	Seal    string `json:"seal"`
}

const keyFileFormat = "postern-keys-v1"

// ErrKeyFile reports a missing, unreadable or unsafe key file.
var ErrKeyFile = errors.New("key file")

// NewKeys draws fresh keys from rnd.
func NewKeys(rnd io.Reader) (*Keys, error) {
	k := &Keys{Version: 1, Pepper: make([]byte, 32), Seal: make([]byte, 32)}
	if _, err := io.ReadFull(rnd, k.Pepper); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rnd, k.Seal); err != nil {
		return nil, err
	}
	return k, nil
}

// CreateKeyFile writes new keys to path (mode 0600, parent 0700 when
// created). It refuses to overwrite an existing file: losing the keys makes
// every sealed secret and app password unusable. rnd nil means crypto/rand.
func CreateKeyFile(path string, rnd io.Reader) (*Keys, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	k, err := NewKeys(rnd)
	if err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(keyFile{
		Format: keyFileFormat, Version: k.Version,
		Pepper: base64.StdEncoding.EncodeToString(k.Pepper),
		Seal:   base64.StdEncoding.EncodeToString(k.Seal),
	}, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	return k, f.Close()
}

// LoadKeyFile reads keys, refusing a file that group or others can read.
func LoadKeyFile(path string) (*Keys, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s is missing (run `postern init`)", ErrKeyFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w %s is readable by others (mode %04o); run `chmod 600 %s`", ErrKeyFile, path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKeyFile, path, err)
	}
	return ParseKeyFile(data, path)
}

// ParseKeyFile reads keys from a key file's contents; name is what errors
// call it.
func ParseKeyFile(data []byte, path string) (*Keys, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil || kf.Format != keyFileFormat {
		return nil, fmt.Errorf("%w %s: not a postern key file", ErrKeyFile, path)
	}
	var err error
	k := &Keys{Version: kf.Version}
	k.Pepper, err = base64.StdEncoding.DecodeString(kf.Pepper)
	if err != nil || len(k.Pepper) != 32 {
		return nil, fmt.Errorf("%w %s: bad pepper", ErrKeyFile, path)
	}
	k.Seal, err = base64.StdEncoding.DecodeString(kf.Seal)
	if err != nil || len(k.Seal) != 32 || k.Version < 1 {
		return nil, fmt.Errorf("%w %s: bad sealing key", ErrKeyFile, path)
	}
	return k, nil
}

// keyCheckKey holds a digest under the pepper that names the key file a
// store was made with. Open writes it when missing and does not judge it
// (a store opened under the wrong keys fails closed, login by login); a
// restore compares it, so a backup restored beside the wrong key file is
// refused with words instead of locking every user out.
const keyCheckKey = "key_check"

func (s *Store) keyCheck() string { return s.mac.hexDigest("postern key check") }

func (s *Store) noteKeyCheck() error {
	return s.db.Update(func(tx kvTx) error {
		if tx.Get(bMeta, keyCheckKey) != nil {
			return nil
		}
		return tx.Put(bMeta, keyCheckKey, []byte(s.keyCheck()))
	})
}

// ErrOtherKeys means a backup was made with another key file.
var ErrOtherKeys = errors.New("the backup was made with another key file")
