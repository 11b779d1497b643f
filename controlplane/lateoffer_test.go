package controlplane_test

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/internal/testenv"
)

var lateOfferLogRE = regexp.MustCompile(`OFFER port=(\d+) END`)

// TestLateOfferCallWithSipp places delayed-offer calls (an INVITE without a
// body, RFC 3261 §13.2.1) from sipp, whose scenario checks recforkd's offer
// in the 200 and answers in the ACK with PCMA at a socket of the test's.
// Checked: the connection runs PCMA toward the answer's address before any
// media arrives (the answer was taken, not latched), the echo app returns
// the test's packets byte for byte, and both directions are recorded. An ACK
// without an answer ends the call with a BYE that sipp expects.
func TestLateOfferCallWithSipp(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		testenv.Unavailable(t, "sipp (Debian sip-tester) is not installed")
	}
	svc, eng := startService(t, svcOpts{dataplane: "userspace"})
	addr := svc.Daemon().SIPAddr().String()
	sf := func(name string) string {
		p, err := filepath.Abs(filepath.Join("testdata", "sipp", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("answer in the ack", func(t *testing.T) {
		media, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer media.Close()
		mport := media.LocalAddr().(*net.UDPAddr).Port
		dir := t.TempDir()
		cmd := exec.Command("sipp", "-sf", sf("late-offer-caller.xml"), "-m", "1", "-l", "1", "-i", "127.0.0.1",
			"-s", "echo", addr, "-key", "mport", strconv.Itoa(mport), "-d", "8000",
			"-trace_logs", "-nostdin", "-timeout", "30s", "-timeout_error")
		cmd.Dir = dir
		logPath := filepath.Join(dir, "sipp.log")
		done := startSipp(t, cmd, logPath)
		offer := waitLog(t, dir, "sipp to log recforkd's offer", lateOfferLogRE)
		oport, _ := strconv.Atoi(offer[1])

		var conn controlplane.ConnectionInfo
		waitFor(t, "the call to connect with the ack's answer", func() bool {
			for _, c := range svc.Daemon().Connections() {
				if c.State == controlplane.StateConnected {
					conn = c
					return true
				}
			}
			return false
		})
		if want := "127.0.0.1:" + strconv.Itoa(mport); conn.MediaPeer != want || conn.Codec != "PCMA" {
			t.Fatalf("connection media %q codec %q, want %s PCMA from the ack", conn.MediaPeer, conn.Codec, want)
		}
		if conn.MediaLocal != "127.0.0.1:"+offer[1] {
			t.Fatalf("offered port %s, connection media at %s", offer[1], conn.MediaLocal)
		}

		// The echo app returns what the answerer sends, byte for byte.
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: oport}
		sent := map[uint16][]byte{}
		for i := range 100 {
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: uint16(1000 + i),
				Timestamp: uint32(160 * i), SSRC: 0x1a7e0ffe}, Payload: bytes.Repeat([]byte{byte(i), 0xd5}, 80)}
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sent[p.SequenceNumber] = b
			if _, err := media.WriteToUDP(b, dst); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		echoed := 0
		buf := make([]byte, 2048)
		_ = media.SetReadDeadline(time.Now().Add(3 * time.Second))
		for echoed < len(sent) {
			n, err := media.Read(buf)
			if err != nil {
				break
			}
			var h rtp.Header
			if _, err := h.Unmarshal(buf[:n]); err == nil && bytes.Equal(sent[h.SequenceNumber], buf[:n]) {
				echoed++
			}
		}
		if echoed < len(sent)/2 {
			t.Fatalf("%d of %d packets echoed byte for byte", echoed, len(sent))
		}
		waitSipp(t, done, "the sipp delayed-offer call", logPath)

		if st := waitOneRecording(t, svc).Streams; len(st) != 2 || st[0].Packets < 50 || st[1].Packets < 50 {
			t.Fatalf("recorded streams %+v, want two with 50 packets or more", st)
		}
	})

	t.Run("no answer in the ack", func(t *testing.T) {
		dir := t.TempDir()
		cmd := exec.Command("sipp", "-sf", sf("late-offer-no-answer.xml"), "-m", "1", "-l", "1", "-i", "127.0.0.1",
			"-s", "echo", addr, "-nostdin", "-timeout", "30s", "-timeout_error")
		cmd.Dir = dir
		logPath := filepath.Join(dir, "sipp.log")
		waitSipp(t, startSipp(t, cmd, logPath), "the sipp caller expecting a BYE", logPath)
	})

	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}
