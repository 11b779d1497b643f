//go:build linux

package userspace

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
)

func srtpUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo4, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func srtpRTP(t *testing.T, ssrc uint32, seq uint16, payload []byte) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readUDP(t *testing.T, c *net.UDPConn, what string) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return buf[:n]
}

func newKey(t *testing.T, suite string) srtp.Crypto {
	t.Helper()
	c, err := srtp.NewCrypto(1, suite)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxOf(t *testing.T, c srtp.Crypto) *srtp.Context {
	t.Helper()
	x, err := srtp.NewContext(c)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestSRTPEndpoint runs an SRTP leg joined to a plain leg over real
// sockets: what the SRTP peer sends arrives at the plain peer in clear and
// at the inbound fork in clear; what the plain peer sends reaches the SRTP
// peer sealed with the leg's own key (and never in clear); forged, replayed
// and wrong-key packets are dropped, the forged ones counted as
// authentication failures, and none reaches the other leg.
func TestSRTPEndpoint(t *testing.T) {
	for _, suite := range []string{srtp.SuiteSHA1_80, srtp.SuiteSHA1_32} {
		t.Run(suite, func(t *testing.T) {
			e := newTestEngine(t, Config{GSORelays: true})
			peerKey, ownKey := newKey(t, suite), newKey(t, suite)
			cipher, err := srtp.NewEndpointCipher(peerKey, ownKey)
			if err != nil {
				t.Fatal(err)
			}
			sp, pp, rec := srtpUDP(t), srtpUDP(t), srtpUDP(t)
			a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: addrOf(sp), Cipher: cipher})
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: addrOf(pp)})
			if err != nil {
				t.Fatal(err)
			}
			src, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
				t.Fatal(err)
			}
			if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: addrOf(rec), Source: src.ID}); err != nil {
				t.Fatal(err)
			}
			enc, dec := ctxOf(t, peerKey), ctxOf(t, ownKey)
			aAddr, bAddr := net.UDPAddrFromAddrPort(a.Local), net.UDPAddrFromAddrPort(b.Local)

			var sealed [][]byte
			for i := range 10 {
				payload := bytes.Repeat([]byte{byte(0x10 + i)}, 160)
				clear := srtpRTP(t, 0xabc, uint16(1000+i), payload)
				s, err := enc.Encrypt(nil, clear)
				if err != nil {
					t.Fatal(err)
				}
				sealed = append(sealed, s)
				if _, err := sp.WriteToUDP(s, aAddr); err != nil {
					t.Fatal(err)
				}
				if got := readUDP(t, pp, "relay to the plain leg"); !bytes.Equal(got, clear) {
					t.Fatalf("packet %d at the plain leg is not the clear packet", i)
				}
				if got := readUDP(t, rec, "inbound copy"); !bytes.Equal(got, clear) {
					t.Fatalf("copy %d is not the clear packet", i)
				}

				back := srtpRTP(t, 0xdef, uint16(50+i), bytes.Repeat([]byte{byte(0x80 + i)}, 160))
				if _, err := pp.WriteToUDP(back, bAddr); err != nil {
					t.Fatal(err)
				}
				got := readUDP(t, sp, "relay to the srtp leg")
				if bytes.Contains(got, back[12:44]) {
					t.Fatalf("packet %d left toward the srtp peer in clear", i)
				}
				plain, err := dec.Decrypt(nil, got)
				if err != nil || !bytes.Equal(plain, back) {
					t.Fatalf("packet %d from the srtp leg does not open with its own key: %v", i, err)
				}
			}

			// A wrong key, a tampered packet and a replay: all dropped.
			wrong := ctxOf(t, newKey(t, suite))
			bad, _ := wrong.Encrypt(nil, srtpRTP(t, 0xabc, 2000, make([]byte, 160)))
			// Tampered with a fresh sequence number: pion checks replay first.
			tampered, _ := enc.Encrypt(nil, srtpRTP(t, 0xabc, 1011, make([]byte, 160)))
			tampered[20] ^= 1
			for _, p := range [][]byte{bad, tampered, sealed[3]} {
				if _, err := sp.WriteToUDP(p, aAddr); err != nil {
					t.Fatal(err)
				}
			}
			// One more good packet after them: once it has been relayed, the
			// three before it have been judged.
			last, _ := enc.Encrypt(nil, srtpRTP(t, 0xabc, 1010, make([]byte, 160)))
			if _, err := sp.WriteToUDP(last, aAddr); err != nil {
				t.Fatal(err)
			}
			if got := readUDP(t, pp, "good packet after bad ones"); len(got) != 172 || binaryBE16(got[2:]) != 1010 {
				t.Fatalf("first packet at the plain leg after the bad ones is seq %d, want 1010", binaryBE16(got[2:]))
			}
			st, err := e.EndpointStats(a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !st.SRTP || st.AuthFailures != 2 || st.Dropped != 3 || st.RxPackets != 11 {
				t.Fatalf("stats %+v: want SRTP, 2 auth failures (wrong key, tampered), 3 dropped (with the replay), 11 received", st)
			}
			es := e.Stats()
			if es.SRTPEndpoints != 1 || es.AuthFailures != 2 {
				t.Fatalf("engine stats %+v: want 1 srtp endpoint, 2 auth failures", es)
			}
			if err := e.CloseEndpoint(a.ID); err != nil {
				t.Fatal(err)
			}
			if es := e.Stats(); es.SRTPEndpoints != 0 || es.AuthFailures != 2 {
				t.Fatalf("after close: %+v: want no srtp endpoint, the 2 failures kept", es)
			}
		})
	}
}

// TestSRTPEcho joins an SRTP endpoint to itself: the peer hears its own
// media back, sealed with the leg's key rather than its own.
func TestSRTPEcho(t *testing.T) {
	e := newTestEngine(t, Config{})
	peerKey, ownKey := newKey(t, srtp.SuiteSHA1_80), newKey(t, srtp.SuiteSHA1_80)
	cipher, err := srtp.NewEndpointCipher(peerKey, ownKey)
	if err != nil {
		t.Fatal(err)
	}
	sp := srtpUDP(t)
	a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: addrOf(sp), Cipher: cipher})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Join(a.ID, a.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	enc, dec, echoWithPeerKey := ctxOf(t, peerKey), ctxOf(t, ownKey), ctxOf(t, peerKey)
	for i := range 5 {
		clear := srtpRTP(t, 7, uint16(i), bytes.Repeat([]byte{0x42}, 160))
		s, _ := enc.Encrypt(nil, clear)
		if _, err := sp.WriteToUDP(s, net.UDPAddrFromAddrPort(a.Local)); err != nil {
			t.Fatal(err)
		}
		got := readUDP(t, sp, "echo")
		if plain, err := dec.Decrypt(nil, got); err != nil || !bytes.Equal(plain, clear) {
			t.Fatalf("echo %d: %v", i, err)
		}
		if _, err := echoWithPeerKey.Decrypt(nil, got); !errors.Is(err, srtp.ErrAuth) {
			t.Fatalf("echo %d opens with the peer's own key (%v): the key was echoed", i, err)
		}
	}
}

func binaryBE16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// udpPair binds an RTP socket and its RTCP socket on the next port.
func udpPair(t *testing.T) (rtpc, rtcpc *net.UDPConn) {
	t.Helper()
	for range 100 {
		r := srtpUDP(t)
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo4, addrOf(r).Port()+1)))
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return r, c
		}
	}
	t.Fatal("no free port pair")
	return nil, nil
}

// TestSRTCPRelay: SRTCP from the SRTP peer reaches the plain leg as clear
// RTCP on its RTCP port, and RTCP from the plain leg reaches the SRTP peer
// as SRTCP under the leg's own key (RFC 3711 §3.4).
func TestSRTCPRelay(t *testing.T) {
	e := newTestEngine(t, Config{})
	peerKey, ownKey := newKey(t, srtp.SuiteSHA1_80), newKey(t, srtp.SuiteSHA1_80)
	cipher, err := srtp.NewEndpointCipher(peerKey, ownKey)
	if err != nil {
		t.Fatal(err)
	}
	spRTP, spRTCP := udpPair(t)
	ppRTP, ppRTCP := udpPair(t)
	a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: addrOf(spRTP), Cipher: cipher})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: addrOf(ppRTP)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	peerTx, err := srtp.NewEndpointCipher(ownKey, peerKey) // the peer's view: it seals with its key
	if err != nil {
		t.Fatal(err)
	}
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0xab, 0xcd}
	s, err := peerTx.Seal(nil, rr, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spRTCP.WriteToUDPAddrPort(s, netip.AddrPortFrom(lo4, a.Local.Port()+1)); err != nil {
		t.Fatal(err)
	}
	if got := readUDP(t, ppRTCP, "rtcp at the plain leg"); !bytes.Equal(got, rr) {
		t.Fatalf("plain leg got % x, want the clear report % x", got, rr)
	}
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if _, err := ppRTCP.WriteToUDPAddrPort(sr, netip.AddrPortFrom(lo4, b.Local.Port()+1)); err != nil {
		t.Fatal(err)
	}
	got := readUDP(t, spRTCP, "srtcp at the srtp peer")
	if bytes.Contains(got, sr[8:]) {
		t.Fatal("rtcp left toward the srtp peer in clear")
	}
	if open, err := peerTx.Open(nil, got, true); err != nil || !bytes.Equal(open, sr) {
		t.Fatalf("srtcp does not open with the leg's key: %v", err)
	}
}
