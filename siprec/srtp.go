package siprec

import (
	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
)

// SRTP toward the SRS (RFC 3711, keyed by SDES a=crypto, RFC 4568). A
// session records with SRTP when its first SRS is a sips: URI or its
// Profile says SRTP. Each recording leg then gets its own keys and its own
// srtp.Relay: the data plane forks the clear copies to the relay (the eBPF
// clone cannot encrypt, so such forks are userspace ones: the recorder is a
// local address), which encrypts them with the stream's own SSRC and
// rollover state and sends them from the port the m-line announces.

// wantsSRTP reports whether recordings to list must use SRTP.
func (c *Client) wantsSRTP(list []sip.Uri) bool {
	if len(list) == 0 {
		return false
	}
	return list[0].Scheme == "sips" || c.profile(list[0]).SRTP
}

// relayLocked returns the SRTP relay of st's recording leg, making it (and
// its keys) the first time. Callers hold s.mu.
func (s *session) relayLocked(st *stream) (*srtp.Relay, error) {
	if r := s.relays[st.ep.ID]; r != nil {
		return r, nil
	}
	c, err := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	if err != nil {
		return nil, err
	}
	r, err := srtp.NewRelay(s.c.cfg.MediaIP, c)
	if err != nil {
		return nil, err
	}
	r.SetSource(st.ep.Local)
	if s.relays == nil {
		s.relays = map[dataplane.EndpointID]*srtp.Relay{}
		s.cryptos = map[dataplane.EndpointID]string{}
	}
	s.relays[st.ep.ID], s.cryptos[st.ep.ID] = r, c.String()
	s.log.Info("recording stream uses srtp: copies go through the userspace relay", "direction", st.dir.String(),
		"relay_in", r.In().String(), "srtp_from", r.Out().String())
	s.c.srtpForks.Add(1)
	return r, nil
}

// closeRelay closes the relay of a recording leg that is gone.
func (s *session) closeRelay(ep dataplane.EndpointID) {
	s.mu.Lock()
	r := s.relays[ep]
	delete(s.relays, ep)
	delete(s.cryptos, ep)
	s.mu.Unlock()
	if r != nil {
		_ = r.Close()
	}
}

// closeRelays closes every relay of the session (its worker ends).
func (s *session) closeRelays() {
	s.mu.Lock()
	rs := s.relays
	s.relays, s.cryptos = nil, nil
	s.mu.Unlock()
	for _, r := range rs {
		_ = r.Close()
	}
}

// SRTPForks counts the recording streams sent with SRTP (each through a
// userspace relay) since the client started.
func (c *Client) SRTPForks() uint64 { return c.srtpForks.Load() }
