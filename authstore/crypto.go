package authstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// KDFParams are argon2id's costs. The defaults follow OWASP's minimum for
// argon2id (m=19 MiB, t=2, p=1).
type KDFParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// defaultKDF is what production uses.
var defaultKDF = KDFParams{Memory: 19 * 1024, Time: 2, Threads: 1}

// maxKDFMemory bounds the cost a stored hash may ask for (1 GiB): a
// damaged record must not make one login allocate terabytes.
const maxKDFMemory = 1 << 20

// valid reports whether argon2id can run with p without panicking or
// exhausting memory; parameters read from the store are checked first.
func (p KDFParams) valid() bool {
	return p.Time >= 1 && p.Time <= 64 && p.Threads >= 1 && p.Memory >= 8*uint32(p.Threads) && p.Memory <= maxKDFMemory
}

// maxPasswordBytes caps account passwords before any hashing (A11).
const (
	minPasswordBytes = 8
	maxPasswordBytes = 1024
)

// hasher bounds how many KDF runs happen at once: each costs Memory KiB,
// so 2,000 concurrent logins must queue, not allocate 38 GB.
type hasher struct {
	params KDFParams
	sem    chan struct{}
	runs   atomic.Int64 // KDF computations started; lets tests prove A3 and A11
	// inflight and peak count concurrent computations, so a test can show
	// the semaphore holds (A11).
	inflight, peak atomic.Int64
}

func newHasher(p KDFParams) *hasher {
	return &hasher{params: p, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (h *hasher) key(ctx context.Context, secret, salt []byte, p KDFParams) ([]byte, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { h.inflight.Add(-1); <-h.sem }()
	h.runs.Add(1)
	for n := h.inflight.Add(1); ; {
		if p := h.peak.Load(); n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, 32), nil
}

// hashPassword returns a PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$hash.
func (h *hasher) hashPassword(ctx context.Context, rnd io.Reader, password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", err
	}
	sum, err := h.key(ctx, []byte(password), salt, h.params)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

var errBadHash = errors.New("malformed password hash")

// verifyPassword checks password against a PHC string in constant time.
func (h *hasher) verifyPassword(ctx context.Context, phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var p KDFParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || !p.valid() {
		return false, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errBadHash
	}
	got, err := h.key(ctx, []byte(password), salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// macPool computes digests: hex(HMAC-SHA256(pepper, parts joined by NUL)),
// the stored form of app passwords, tokens and web-session ids. Keyed by a
// pepper outside the database, so a stolen database alone does not allow
// offline guessing. It lends keyed HMAC states: keying one costs two SHA-256
// blocks and several allocations, resetting a keyed one costs nothing (app
// passwords are checked on every DAV request).
type macPool struct{ p sync.Pool }

// macState is one keyed HMAC with room for its input and output.
type macState struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

func newMacPool(key []byte) *macPool {
	key = slices.Clone(key)
	m := &macPool{}
	m.p.New = func() any { return &macState{h: hmac.New(sha256.New, key), in: make([]byte, 0, 256)} }
	return m
}

// hexDigest is hex(HMAC-SHA256(key, parts joined by NUL)).
func (m *macPool) hexDigest(parts ...string) string {
	st := m.p.Get().(*macState)
	st.in = st.in[:0]
	for i, p := range parts {
		if i > 0 {
			st.in = append(st.in, 0)
		}
		st.in = append(st.in, p...)
	}
	st.h.Reset()
	st.h.Write(st.in)
	out := hex.EncodeToString(st.h.Sum(st.sum[:0]))
	clear(st.in) // the input holds a secret
	m.p.Put(st)
	return out
}

// sealer encrypts secrets at rest with AES-256-GCM. The AAD binds a
// ciphertext to its owner and field, so a record carrying another user's
// ciphertext does not open (A13).
type sealer struct {
	version int
	aead    cipher.AEAD
}

func newSealer(k *Keys) (*sealer, error) {
	block, err := aes.NewCipher(k.Seal)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{version: k.Version, aead: aead}, nil
}

var errUnseal = errors.New("sealed secret cannot be opened")

func (s *sealer) aad(owner, field string, version int) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%d", owner, field, version)
}

// seal returns version(4) ‖ nonce ‖ ciphertext.
func (s *sealer) seal(rnd io.Reader, owner, field string, plain []byte) ([]byte, error) {
	out := binary.BigEndian.AppendUint32(nil, uint32(s.version))
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plain, s.aad(owner, field, s.version)), nil
}

func (s *sealer) open(owner, field string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 4+ns+s.aead.Overhead() {
		return nil, errUnseal
	}
	version := int(binary.BigEndian.Uint32(sealed))
	if version != s.version {
		return nil, errUnseal
	}
	plain, err := s.aead.Open(nil, sealed[4:4+ns], sealed[4+ns:], s.aad(owner, field, version))
	if err != nil {
		return nil, errUnseal
	}
	return plain, nil
}
