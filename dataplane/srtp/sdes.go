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
	// MKI is the master key identifier the peer puts in each of its packets
	// (RFC 3711 §3.1, RFC 4568 §9.2 "MKI:LENGTH"), big-endian in its
	// announced length; nil for none. recfork's own keys never have one.
	MKI []byte
	// Params are the attribute's session parameters (RFC 4568 §6.3, e.g.
	// "KDR=0", "UNENCRYPTED_SRTCP"), as offered; never sent.
	Params []string
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
	s := fmt.Sprintf("%d %s inline:%s", c.Tag, c.Suite, base64.StdEncoding.EncodeToString(append(append([]byte{}, c.Key...), c.Salt...)))
	if len(c.MKI) > 0 {
		// Only a parsed peer key has one; render it as it came.
		var v uint64
		for _, b := range c.MKI {
			v = v<<8 | uint64(b)
		}
		s += fmt.Sprintf("|%d:%d", v, len(c.MKI))
	}
	return s
}

// ParseCrypto reads an a=crypto value (with or without the "crypto:"
// prefix): "TAG SUITE inline:KEYSALT[|LIFETIME][|MKI:LEN] [params]". Only
// the first key parameter is used; a lifetime is accepted and ignored (the
// calls and recordings recfork keys end long before 2^31 packets), an MKI
// is kept (Crypto.MKI) for decrypting the peer's packets, unknown suites are
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
	if len(parts) > 3 {
		return Crypto{}, fmt.Errorf("%w: key parameter %q has too many fields", ErrBadCrypto, kp)
	}
	for _, p := range parts[1:] {
		if v, l, ok := strings.Cut(p, ":"); ok {
			mki, err := parseMKI(v, l)
			if err != nil || c.MKI != nil {
				return Crypto{}, fmt.Errorf("%w: MKI %q", ErrBadCrypto, p)
			}
			c.MKI = mki
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
	if len(f) > 3 {
		c.Params = f[3:]
	}
	return c, nil
}

// parseMKI reads RFC 4568 §9.2's "MKI-VALUE:MKI-LENGTH" (decimal value,
// length in bytes, 1-128) into its big-endian bytes. Values beyond 64 bits
// are not supported; no peer uses them.
func parseMKI(value, length string) ([]byte, error) {
	v, err := strconv.ParseUint(value, 10, 64)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(length)
	if err != nil || n < 1 || n > 128 {
		return nil, fmt.Errorf("mki length %q", length)
	}
	if n < 8 && v>>(8*n) != 0 {
		return nil, fmt.Errorf("mki %d does not fit %d bytes", v, n)
	}
	b := make([]byte, n)
	for i := n - 1; i >= 0 && v != 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b, nil
}

// Supported reports whether recfork can key a context with c's session
// parameters: it encrypts and authenticates everything, and derives the
// session keys once (RFC 3711 §4.3: key derivation rate 0). A line with
// another parameter is skipped in an answer (RFC 4568 §6.3, §7.1.1).
func (c Crypto) Supported() bool {
	for _, p := range c.Params {
		switch {
		case strings.EqualFold(p, "KDR=0"):
		case strings.HasPrefix(strings.ToUpper(p), "FEC_ORDER="), strings.HasPrefix(strings.ToUpper(p), "WSH="):
			// Only for FEC and a wider replay window: harmless to ignore.
		default:
			return false
		}
	}
	return true
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
	opts := []pionsrtp.ContextOption{pionsrtp.SRTPReplayProtection(64), pionsrtp.SRTCPReplayProtection(64)}
	if len(c.MKI) > 0 {
		opts = append(opts, pionsrtp.MasterKeyIndicator(c.MKI))
	}
	ctx, err := pionsrtp.CreateContext(c.Key, c.Salt, p, opts...)
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
