package agefile

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func seal(t *testing.T, l Lock, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, l)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLocksAndKeys: a passphrase file opens with its passphrase only, a
// recipients file with its identity only, each wrong key is ErrWrongKey
// with words saying which kind of key the file wants, and a flipped byte
// in the payload is ErrDamaged once read.
func TestLocksAndKeys(t *testing.T) {
	plain := bytes.Repeat([]byte("store page "), 20000)
	byPass := seal(t, Lock{Passphrase: "a long enough passphrase", scryptLogN: 10}, plain)
	r, key, err := OneTime()
	if err != nil {
		t.Fatal(err)
	}
	byKey := seal(t, Lock{Recipients: []string{r}}, plain)
	_, other, _ := OneTime()
	tests := []struct {
		name string
		file []byte
		key  Key
		want error
	}{
		{"passphrase", byPass, Key{Passphrase: "a long enough passphrase"}, nil},
		{"wrong passphrase", byPass, Key{Passphrase: "another passphrase"}, ErrWrongKey},
		{"identity for a passphrase file", byPass, key, ErrWrongKey},
		{"identity", byKey, key, nil},
		{"other identity", byKey, other, ErrWrongKey},
		{"passphrase for a recipients file", byKey, Key{Passphrase: "a long enough passphrase"}, ErrWrongKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decrypt(bytes.NewReader(tc.file), tc.key)
			if err == nil {
				var got []byte
				got, err = io.ReadAll(r)
				if err == nil && !bytes.Equal(got, plain) {
					t.Fatal("plaintext differs")
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	flipped := bytes.Clone(byKey)
	flipped[len(flipped)/2] ^= 1
	r2, err := Decrypt(bytes.NewReader(flipped), key)
	if err == nil {
		_, err = io.ReadAll(r2)
	}
	if !errors.Is(err, ErrDamaged) {
		t.Errorf("flipped byte: %v", err)
	}
}

func TestLockChecks(t *testing.T) {
	for name, l := range map[string]Lock{
		"short passphrase": {Passphrase: "short"},
		"both":             {Passphrase: "a long enough passphrase", Recipients: []string{"age1x"}},
		"none":             {},
		"not a recipient":  {Recipients: []string{"ssh-ed25519 AAAA"}},
	} {
		if err := l.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
