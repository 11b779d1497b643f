package controlplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/dataplane/srtp"
)

// SRTP on calls (--call-srtp): SDES-keyed SRTP (RFC 3711, RFC 4568) between
// recfork and each call's peer. Each leg has its own keys: the peer's, from
// its a=crypto, open what it sends; recfork's own, fresh per leg and never
// the peer's echoed back, seal what recfork sends it. The data plane opens
// packets on arrival, so joins re-seal them with the other leg's keys and
// recording copies leave as clear RTP (SRTP again only when the SRS profile
// asks, with the SRS's own keys, siprec). DTLS-SRTP is refused.
const (
	// CallSRTPOff answers RTP/AVP only: an offer with only RTP/SAVP gets
	// 488 saying SRTP is off. The zero value.
	CallSRTPOff = "off"
	// CallSRTPAccept answers an RTP/SAVP audio stream with a usable
	// a=crypto with SRTP (preferred over an RTP/AVP stream in the same
	// offer) and plain offers with RTP; a call recfork places offers SRTP
	// when the call it will be joined to is SRTP.
	CallSRTPAccept = "accept"
	// CallSRTPRequire answers SRTP only (a plain offer gets 488), and every
	// call recfork places offers RTP/SAVP.
	CallSRTPRequire = "require"
)

// Why an offer's audio is refused; each wraps ErrNoCommonCodec (488).
var (
	errDTLSSRTP     = fmt.Errorf("DTLS-SRTP (UDP/TLS/RTP/SAVP, a=fingerprint) is not supported; offer RTP/SAVP with a=crypto (SDES): %w", ErrNoCommonCodec)
	errNoCrypto     = fmt.Errorf("RTP/SAVP offered without a usable a=crypto (SDES AES_CM_128_HMAC_SHA1_80 or _32): %w", ErrNoCommonCodec)
	errSRTPOff      = fmt.Errorf("SRTP on calls is off (RTP/SAVP offered, RTP/AVP needed): %w", ErrNoCommonCodec)
	errSRTPRequired = fmt.Errorf("SRTP required (RTP/AVP offered, RTP/SAVP with a=crypto needed): %w", ErrNoCommonCodec)
)

func validCallSRTP(mode string) bool {
	switch mode {
	case CallSRTPOff, CallSRTPAccept, CallSRTPRequire:
		return true
	}
	return false
}

// offerWarning is the Warning header of a 488 for an offer parseSDPSRTP
// refused (RFC 3261 §20.43: 302 incompatible transport protocol, 399
// miscellaneous).
func offerWarning(err error) sip.Header {
	code, text := "399", ""
	switch {
	case errors.Is(err, errDTLSSRTP), errors.Is(err, errSRTPOff), errors.Is(err, errSRTPRequired):
		code = "302"
		text = strings.TrimSuffix(err.Error(), ": "+ErrNoCommonCodec.Error())
	case errors.Is(err, errNoCrypto):
		text = strings.TrimSuffix(err.Error(), ": "+ErrNoCommonCodec.Error())
	default:
		text = err.Error()
	}
	return sip.NewHeader("Warning", code+` recfork "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// legSRTP is the SRTP state of one call leg.
type legSRTP struct {
	cipher *srtp.EndpointCipher
	// local are recfork's keys: one per suite while an offer of ours is
	// pending, the chosen one once answered.
	local []srtp.Crypto
	// remote is the peer's key; zero while our offer is unanswered.
	remote srtp.Crypto
}

// cryptoLines are the a=crypto values of our side.
func (l *legSRTP) cryptoLines() []string {
	out := make([]string, len(l.local))
	for i, c := range l.local {
		out[i] = c.String()
	}
	return out
}

// answerSRTP keys a leg for an SRTP offer: the first offered line (the
// peer's preference, RFC 4568 §7.1.1) answered with a fresh key of its
// suite under its tag (§6.1).
func answerSRTP(offered []srtp.Crypto) (*legSRTP, error) {
	if len(offered) == 0 {
		return nil, errNoCrypto
	}
	remote := offered[0]
	local, err := srtp.NewCrypto(remote.Tag, remote.Suite)
	if err != nil {
		return nil, fmt.Errorf("srtp answer: %w", err)
	}
	cipher, err := srtp.NewEndpointCipher(remote, local)
	if err != nil {
		return nil, fmt.Errorf("srtp answer: %w", err)
	}
	return &legSRTP{cipher: cipher, local: []srtp.Crypto{local}, remote: remote}, nil
}

// offerSRTP keys a leg recfork calls out on: one fresh key per suite, _80
// first (RFC 4568 §6.2.1 and §6.2.2); the peer's key comes with its answer.
func offerSRTP() (*legSRTP, error) {
	var local []srtp.Crypto
	for i, suite := range []string{srtp.SuiteSHA1_80, srtp.SuiteSHA1_32} {
		c, err := srtp.NewCrypto(i+1, suite)
		if err != nil {
			return nil, fmt.Errorf("srtp offer: %w", err)
		}
		local = append(local, c)
	}
	cipher, err := srtp.NewEndpointCipher(srtp.Crypto{}, local[0])
	if err != nil {
		return nil, fmt.Errorf("srtp offer: %w", err)
	}
	return &legSRTP{cipher: cipher, local: local}, nil
}

// accept takes the peer's answer to our offer: exactly one a=crypto whose
// tag and suite are one of ours (RFC 4568 §7.1.2); our key of that tag
// then seals and the peer's opens.
func (l *legSRTP) accept(answered []srtp.Crypto) error {
	for _, a := range answered {
		for _, own := range l.local {
			if a.Tag != own.Tag || a.Suite != own.Suite {
				continue
			}
			if err := l.cipher.Rekey(a, own); err != nil {
				return fmt.Errorf("srtp answer: %w", err)
			}
			l.local, l.remote = []srtp.Crypto{own}, a
			return nil
		}
	}
	return fmt.Errorf("srtp answer: no a=crypto with a tag and suite of the offer: %w", ErrNoCommonCodec)
}

// reoffer applies an SRTP re-offer inside the dialog: the peer may bring a
// new key or choose another suite (RFC 4568 §7.1.4); our key stays unless
// the suite changes.
func (l *legSRTP) reoffer(offered []srtp.Crypto) error {
	if len(offered) == 0 {
		return errNoCrypto
	}
	remote := offered[0]
	local := l.local[0]
	if local.Suite != remote.Suite || local.Tag != remote.Tag {
		var err error
		if local, err = srtp.NewCrypto(remote.Tag, remote.Suite); err != nil {
			return fmt.Errorf("srtp re-offer: %w", err)
		}
	}
	if err := l.cipher.Rekey(remote, local); err != nil {
		return fmt.Errorf("srtp re-offer: %w", err)
	}
	l.local, l.remote = []srtp.Crypto{local}, remote
	return nil
}
