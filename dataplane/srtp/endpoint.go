package srtp

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	pionsrtp "github.com/pion/srtp/v3"

	"github.com/recfork/recfork/dataplane"
)

// EndpointCipher is the SRTP of one call leg (RFC 3711 with SDES keys, RFC
// 4568): what the peer sends is opened with the peer's key (the a=crypto of
// its SDP), what recfork sends is sealed with recfork's own key (the
// a=crypto of recfork's SDP). It implements dataplane.Cipher. Each side is
// one pion context, which keeps the rollover counter and replay window of
// every SSRC it sees; a mutex per side serialises it, since a leg may be
// relayed to from endpoints served by different data-plane workers.
type EndpointCipher struct {
	rxMu  sync.Mutex
	rx    *pionsrtp.Context
	rxKey Crypto
	txMu  sync.Mutex
	tx    *pionsrtp.Context
	txKey Crypto
}

var _ dataplane.Cipher = (*EndpointCipher)(nil)

// errNoKey is Open's error before the peer's key is known.
var errNoKey = errors.New("srtp: no key for the peer yet")

// NewEndpointCipher keys a leg: remote is the peer's key, local recfork's.
// A remote without a key (the zero Crypto) is set later with Rekey, when
// the peer answers an offer; until then what arrives is dropped.
func NewEndpointCipher(remote, local Crypto) (*EndpointCipher, error) {
	c := &EndpointCipher{}
	if err := c.Rekey(remote, local); err != nil {
		return nil, err
	}
	return c, nil
}

// Rekey replaces the keys (RFC 4568 §7.1.4: an offer in a re-INVITE may
// bring new ones); a side whose key is unchanged keeps its context, so its
// rollover counters and replay windows carry on. A remote without a key
// leaves the receiving side as it is.
func (c *EndpointCipher) Rekey(remote, local Crypto) error {
	var rx, tx *Context
	var err error
	if remote.Key != nil {
		if rx, err = NewContext(remote); err != nil {
			return fmt.Errorf("peer key: %w", err)
		}
	}
	if tx, err = NewContext(local); err != nil {
		return fmt.Errorf("own key: %w", err)
	}
	if rx != nil {
		c.rxMu.Lock()
		if !sameKey(c.rxKey, remote) {
			c.rx, c.rxKey = rx.ctx, remote
		}
		c.rxMu.Unlock()
	}
	c.txMu.Lock()
	if !sameKey(c.txKey, local) {
		c.tx, c.txKey = tx.ctx, local
	}
	c.txMu.Unlock()
	return nil
}

func sameKey(a, b Crypto) bool {
	return a.Suite == b.Suite && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Salt, b.Salt) && bytes.Equal(a.MKI, b.MKI)
}

// Open implements dataplane.Cipher. Failed authentication wraps
// dataplane.ErrAuth (and ErrAuth); a replayed packet or one too short for
// its tag is another error.
func (c *EndpointCipher) Open(dst, pkt []byte, rtcp bool) ([]byte, error) {
	c.rxMu.Lock()
	var out []byte
	var err error
	if c.rx == nil {
		c.rxMu.Unlock()
		return nil, errNoKey
	}
	if rtcp {
		out, err = c.rx.DecryptRTCP(dst[:0], pkt, nil)
	} else {
		out, err = c.rx.DecryptRTP(dst[:0], pkt, nil)
	}
	c.rxMu.Unlock()
	if errors.Is(err, pionsrtp.ErrFailedToVerifyAuthTag) || errors.Is(err, pionsrtp.ErrMKINotFound) {
		// An unknown MKI names a key the peer never gave: as forged.
		return nil, fmt.Errorf("%w: %w: %w", dataplane.ErrAuth, ErrAuth, err)
	}
	return out, err
}

// Seal implements dataplane.Cipher.
func (c *EndpointCipher) Seal(dst, pkt []byte, rtcp bool) ([]byte, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if rtcp {
		return c.tx.EncryptRTCP(dst[:0], pkt, nil)
	}
	return c.tx.EncryptRTP(dst[:0], pkt, nil)
}
