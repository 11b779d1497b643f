package srtp

import (
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
	rxMu sync.Mutex
	rx   *pionsrtp.Context
	txMu sync.Mutex
	tx   *pionsrtp.Context
}

var _ dataplane.Cipher = (*EndpointCipher)(nil)

// NewEndpointCipher keys a leg: remote is the peer's key, local recfork's.
func NewEndpointCipher(remote, local Crypto) (*EndpointCipher, error) {
	rx, err := NewContext(remote)
	if err != nil {
		return nil, fmt.Errorf("peer key: %w", err)
	}
	tx, err := NewContext(local)
	if err != nil {
		return nil, fmt.Errorf("own key: %w", err)
	}
	return &EndpointCipher{rx: rx.ctx, tx: tx.ctx}, nil
}

// Open implements dataplane.Cipher. Failed authentication wraps
// dataplane.ErrAuth (and ErrAuth); a replayed packet or one too short for
// its tag is another error.
func (c *EndpointCipher) Open(dst, pkt []byte, rtcp bool) ([]byte, error) {
	c.rxMu.Lock()
	var out []byte
	var err error
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
