package srs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/recfork/recfork/dataplane/srtp"
)

// keyStream keys st from its m-line: an SRTP m-line (RTP/SAVP with a usable
// a=crypto) gets a decryption context, made again only when the offer
// changes the key (RFC 4568 §7.1.4: a re-offer may rekey); our answer's key
// is made once per stream. Callers hold st.mu.
func (st *stream) keyStream(m mline) error {
	if m.crypto == nil || m.proto != "RTP/SAVP" {
		st.srtp, st.srtpKey, st.answerCrypto = nil, nil, ""
		return nil
	}
	key := append(append([]byte{}, m.crypto.Key...), m.crypto.Salt...)
	if st.srtp == nil || !bytes.Equal(key, st.srtpKey) {
		ctx, err := srtp.NewContext(*m.crypto)
		if err != nil {
			return err
		}
		st.srtp, st.srtpKey = ctx, key
	}
	if prefix := fmt.Sprintf("%d %s ", m.crypto.Tag, m.crypto.Suite); !strings.HasPrefix(st.answerCrypto, prefix) {
		// The SRS never sends media, but the answer carries its own key
		// with the offer's tag and suite (RFC 4568 §7.1.2).
		c, err := srtp.NewCrypto(m.crypto.Tag, m.crypto.Suite)
		if err != nil {
			return err
		}
		st.answerCrypto = c.String()
	}
	return nil
}

// decrypt turns an SRTP datagram into RTP; a packet that fails
// authentication is counted and dropped (never a crash, never noise in the
// file). Callers hold st.mu.
func (st *stream) decrypt(b []byte) ([]byte, bool) {
	out, err := st.srtp.Decrypt(st.plain, b)
	if err != nil {
		if errors.Is(err, srtp.ErrAuth) {
			st.authFailures++
		} else {
			st.malformed++
		}
		return nil, false
	}
	st.plain = out[:0:cap(out)]
	return out, true
}
