//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
)

// TestSRTPEndpointStaysInUserspace joins an SRTP endpoint (a Cipher) to a
// plain one on the media interface: the kernel, which would pass SRTP
// through unchanged, relays neither direction and does not fork the SRTP
// endpoint; Media opens the SRTP, so the plain party, the SRTP endpoint's
// inbound copy and the plain endpoint's outbound copy (still forked in the
// kernel) all get the clear packets, and the SRTP party gets them sealed.
func TestSRTPEndpointStaysInUserspace(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	pa, pb := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
	recIn, recOut := listenPair(t, tp.rec, tp.recIP), listenPair(t, tp.rec, tp.recIP)
	peerKey, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	ownKey, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	cipher, err := srtp.NewEndpointCipher(peerKey, ownKey)
	if err != nil {
		t.Fatal(err)
	}
	var a dataplane.EndpointInfo
	tp.eng.MustDo(t, func() (err error) {
		a, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP, Remote: pa.addr, Cipher: cipher})
		return err
	})
	b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
	srcIn := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	srcOut := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	tp.eng.MustDo(t, func() error {
		if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: recIn.addr, Source: srcIn.ID}); err != nil {
			return err
		}
		if err := e.AddFork(b.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: recOut.addr, Source: srcOut.ID}); err != nil {
			return err
		}
		return e.Join(a.ID, b.ID, dataplane.Full)
	})
	if e.RelayedInKernel(a.ID, b.ID) || e.RelayedInKernel(b.ID, a.ID) {
		t.Fatal("a join with an srtp endpoint is relayed in the kernel")
	}
	e.mu.Lock()
	inMedia, outMedia := e.forks[forkID{a.ID, dataplane.Inbound}].media, e.forks[forkID{b.ID, dataplane.Outbound}].media
	e.mu.Unlock()
	if !inMedia || outMedia {
		t.Fatalf("srtp endpoint's fork in userspace %v (want true), plain endpoint's %v (want false)", inMedia, outMedia)
	}

	enc, _ := srtp.NewContext(peerKey)
	dec, _ := srtp.NewContext(ownKey)
	clear := rtpN(0xabc, 1, 10)
	for _, p := range clear {
		s, err := enc.Encrypt(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		send(t, pa.rtp, a.Local, s)
	}
	expect(t, pb.rtp, b.Local, clear...)
	expect(t, recIn.rtp, srcIn.Local, clear...)
	expect(t, recOut.rtp, srcOut.Local, clear...)

	back := rtpN(0xdef, 1, 5)
	send(t, pb.rtp, b.Local, back...)
	buf := make([]byte, 2048)
	_ = pa.rtp.SetReadDeadline(time.Now().Add(waitLimit))
	for i, want := range back {
		n, err := pa.rtp.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decrypt(nil, buf[:n])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("packet %d to the srtp party does not open with the endpoint's key: %v", i, err)
		}
	}
	if s := e.Stats(); s.SRTPEndpoints != 1 {
		t.Fatalf("stats %+v: want 1 srtp endpoint", s)
	}
}
