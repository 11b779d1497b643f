package srtp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	pionsrtp "github.com/pion/srtp/v3"
)

// Suite names of RFC 4568 §6.2 this package supports.
const (
	SuiteSHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteSHA1_32 = "AES_CM_128_HMAC_SHA1_32"
)

// ErrBadCrypto is wrapped by every a=crypto parse error.
var ErrBadCrypto = errors.New("bad a=crypto")

// keyLen and saltLen are the master key and salt sizes of both suites (RFC
// 4568 §6.2.1: 128-bit key, 112-bit salt, 40 bytes of base64 for 30 bytes).
const keyLen, saltLen = 16, 14

// Crypto is one a=crypto attribute (RFC 4568 §9.1).
type Crypto struct {
	// Tag is the attribute's tag (1-999999999), echoed in the answer.
	Tag int
	// Suite is SuiteSHA1_80 or SuiteSHA1_32.
	Suite string
	// Key and Salt are the master key (16 bytes) and salt (14 bytes).
	Key, Salt []byte
}

// NewCrypto makes fresh random keys for suite: each recording leg gets its
// own.
func NewCrypto(tag int, suite string) (Crypto, error) {
	if _, err := profileOf(suite); err != nil {
		return Crypto{}, err
	}
	b := make([]byte, keyLen+saltLen)
	if _, err := rand.Read(b); err != nil {
		return Crypto{}, fmt.Errorf("srtp key: %w", err)
	}
	return Crypto{Tag: tag, Suite: suite, Key: b[:keyLen], Salt: b[keyLen:]}, nil
}

// String is the attribute value, without "a=crypto:" (strict in what we
// send: no lifetime, no MKI, no session parameters).
func (c Crypto) String() string {
	return fmt.Sprintf("%d %s inline:%s", c.Tag, c.Suite, base64.StdEncoding.EncodeToString(append(append([]byte{}, c.Key...), c.Salt...)))
}

// ParseCrypto reads an a=crypto value (with or without the "crypto:"
// prefix): "TAG SUITE inline:KEYSALT[|LIFETIME][|MKI:LEN] [params]". Only
// the first key parameter is used; a lifetime is accepted, an MKI is refused
// (the Relay keys one context per stream without MKI), unknown suites are
// refused.
func ParseCrypto(v string) (Crypto, error) {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(v), "a="), "crypto:"))
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: %q: want tag, suite and key parameters", ErrBadCrypto, v)
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrBadCrypto, f[0])
	}
	c := Crypto{Tag: tag, Suite: strings.ToUpper(f[1])}
	if _, err := profileOf(c.Suite); err != nil {
		return Crypto{}, err
	}
	kp := strings.Split(f[2], ";")[0]
	method, info, ok := strings.Cut(kp, ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return Crypto{}, fmt.Errorf("%w: key method %q is not inline", ErrBadCrypto, method)
	}
	parts := strings.Split(info, "|")
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return Crypto{}, fmt.Errorf("%w: MKI %q is not supported", ErrBadCrypto, p)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		// Some peers leave the padding off.
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	}
	if err != nil || len(raw) != keyLen+saltLen {
		return Crypto{}, fmt.Errorf("%w: key %q is not 30 bytes of base64", ErrBadCrypto, parts[0])
	}
	c.Key, c.Salt = raw[:keyLen], raw[keyLen:]
	return c, nil
}

func profileOf(suite string) (pionsrtp.ProtectionProfile, error) {
	switch suite {
	case SuiteSHA1_80:
		return pionsrtp.ProtectionProfileAes128CmHmacSha1_80, nil
	case SuiteSHA1_32:
		return pionsrtp.ProtectionProfileAes128CmHmacSha1_32, nil
	}
	return 0, fmt.Errorf("%w: suite %q is not supported (want %s or %s)", ErrBadCrypto, suite, SuiteSHA1_80, SuiteSHA1_32)
}

// Context is the SRTP state of one stream direction, made from its a=crypto
// keys. Not safe for concurrent use: each stream has its own.
type Context struct {
	ctx *pionsrtp.Context
}

// NewContext keys a context with c.
func NewContext(c Crypto) (*Context, error) {
	p, err := profileOf(c.Suite)
	if err != nil {
		return nil, err
	}
	ctx, err := pionsrtp.CreateContext(c.Key, c.Salt, p, pionsrtp.SRTPReplayProtection(64))
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	return &Context{ctx: ctx}, nil
}

// Encrypt appends the SRTP packet of the RTP packet pkt to dst[:0].
func (c *Context) Encrypt(dst, pkt []byte) ([]byte, error) {
	return c.ctx.EncryptRTP(dst[:0], pkt, nil)
}

// Decrypt appends the RTP packet of the SRTP packet pkt to dst[:0]. A
// packet that fails authentication (wrong keys, tampering) returns an error
// wrapping ErrAuth.
func (c *Context) Decrypt(dst, pkt []byte) ([]byte, error) {
	out, err := c.ctx.DecryptRTP(dst[:0], pkt, nil)
	if errors.Is(err, pionsrtp.ErrFailedToVerifyAuthTag) {
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return out, err
}

// ErrAuth is wrapped by Decrypt when a packet fails authentication.
var ErrAuth = errors.New("srtp authentication failed")
