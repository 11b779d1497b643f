package controlplane_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/internal/testcert"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// TestTLSInNamespaces runs recforkd with a certificate made by the test: a
// sipp call (sipp here has no TLS) is recorded to `recforkctl srs` over SIP
// over TLS. tshark on the SRS host proves no SIP crossed in clear and that
// TLS did; the SRS's WAVs hold the caller's tone. openssl s_client, a TLS
// client nobody here wrote, verifies recforkd's call listener certificate
// and gets a 200 to an OPTIONS over it. The media to the sips: SRS is SRTP:
// tshark decodes the copies on the wire as RTP whose payloads are not the
// caller's and carry an authentication tag, and the same check fails on
// the caller's plain RTP.
func TestTLSInNamespaces(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "tshark", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	n := newInteropNet(t)
	ca := testcert.NewCA(t)
	caFile := ca.File(t, n.dir)
	platCert, platKey := ca.Issue(t, "10.201.1.2", "10.201.2.2").Files(t, n.dir, "platform")
	srsCert, srsKey := ca.Issue(t, "10.201.2.1").Files(t, n.dir, "srs")

	capFile := filepath.Join(n.dir, "srs.pcap")
	tshark := n.srs.Exec("tshark", "-i", n.srsIf, "-f", "udp or tcp", "-w", capFile)
	tlog := filepath.Join(n.dir, "tshark.log")
	tf := startProc(t, tshark, tlog)
	waitFor(t, "tshark to capture", func() bool {
		b, _ := os.ReadFile(tlog)
		return strings.Contains(string(b), "Capturing on")
	})
	// The caller's side too: the plain RTP sipp sends, the negative
	// control of the SRTP check below.
	callerCap := filepath.Join(n.dir, "caller.pcap")
	ctshark := n.caller.Exec("tshark", "-i", "any", "-f", "udp", "-w", callerCap)
	clog := filepath.Join(n.dir, "tshark-caller.log")
	cf := startProc(t, ctshark, clog)
	waitFor(t, "tshark to capture on the caller's side", func() bool {
		b, _ := os.ReadFile(clog)
		return strings.Contains(string(b), "Capturing on")
	})

	dir := filepath.Join(n.dir, "srs")
	startProc(t, n.srs.Exec(recforkctl, "srs", "--listen", "10.201.2.1:5080", "--dir", dir, "--rtp-ports", "40000-40999",
		"--tls-cert", srsCert, "--tls-key", srsKey, "--tls-ca", caFile, "--tls-listen", "10.201.2.1:5081"),
		filepath.Join(n.dir, "srs.log"))
	waitFor(t, "the SRS's TLS listener", func() bool {
		out, _ := n.srs.Exec("ss", "-ltn", "sport", "= :5081").Output()
		return strings.Contains(string(out), "5081")
	})
	admin := n.startRecforkd(t, recforkd, "userspace", "sips:srs@10.201.2.1:5081", "--srs-keepalive", "0",
		"--tls-cert", platCert, "--tls-key", platKey, "--tls-ca", caFile)
	waitFor(t, "recforkd's TLS listener", func() bool {
		out, _ := n.plat.Exec("ss", "-ltn", "sport", "= :5061").Output()
		return strings.Contains(string(out), "5061")
	})

	// An independent TLS client on the call listener.
	if status := opensslOptions(t, n.caller, "10.201.1.2:5061", "10.201.1.2", caFile); !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Fatalf("OPTIONS over TLS to recforkd: %q", status)
	}

	callDone := n.call(t, 3000)
	rec := recording(t, admin, "an active recording over TLS", func(r controlplane.RecordingInfo) bool {
		return r.Inbound == "active" && r.Outbound == "active" && len(r.Streams) == 2 && r.Streams[0].CopiedPackets > 10
	})
	if rec.Transport != "tls" || rec.Remote != "10.201.2.1:5081" {
		t.Fatalf("recording %+v", rec)
	}
	n.waitCall(t, callDone)
	var info srs.SessionInfo
	waitFor(t, "the SRS's session summary", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "*", "session.json"))
		if len(m) != 1 {
			return false
		}
		b, err := os.ReadFile(m[0])
		return err == nil && json.Unmarshal(b, &info) == nil && info.State == srs.StateEnded
	})
	for _, c := range []*exec.Cmd{tshark, ctshark} {
		_ = c.Process.Signal(os.Interrupt)
		_ = c.Wait()
	}
	tf.Close()
	cf.Close()
	if info.Transport != "TLS" || info.EndReason != srs.EndByeFromSRC || len(info.Streams) != 2 {
		t.Fatalf("srs session %+v", info)
	}
	wavs := wavReport(t, recforkctl, info.Streams[0].Path, info.Streams[1].Path)
	for i, w := range wavs {
		if math.Abs(w.ToneHz-440) > 15 || w.Active < 2 {
			t.Errorf("stream %d: %+v", i, w)
		}
	}

	// tshark, not our parser: TLS handshakes toward the SRS's TLS port, and
	// not one SIP message in clear on the SRS host's wire (the keepalive is
	// off; the recording's INVITE, re-INVITEs and BYE all went over TLS).
	out, err := exec.Command("tshark", "-r", capFile, "-d", "tcp.port==5081,tls", "-Y", "tls.handshake.type == 1 && tcp.dstport == 5081",
		"-T", "fields", "-e", "tcp.dstport").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "5081") {
		t.Fatalf("no TLS ClientHello toward the SRS in the capture: %v\n%s", err, out)
	}
	out, err = exec.Command("tshark", "-r", capFile, "-Y", "sip", "-T", "fields", "-e", "frame.number", "-e", "sip.Request-Line", "-e", "sip.Status-Line").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("SIP crossed in clear:\n%s", s)
	}
	b, _ := os.ReadFile(filepath.Join(n.dir, "recforkd.log"))
	if !strings.Contains(string(b), "transport=tls") {
		t.Fatalf("recforkd's log does not say the recording went over tls")
	}
	// A sips: SRS gets SRTP: both copies went through the SRTP relay, and
	// the SRS authenticated every packet (the tone above was decrypted).
	if c := strings.Count(string(b), "recording stream uses srtp"); c != 2 {
		t.Fatalf("recforkd logged %d srtp streams, want 2", c)
	}
	for i, st := range info.Streams {
		if st.AuthFailures != 0 || st.Packets == 0 {
			t.Errorf("srs stream %d: %d packets, %d auth failures", i, st.Packets, st.AuthFailures)
		}
	}

	// tshark decodes the copies on the SRS's recording ports (from its
	// session.json) as RTP: RTP-shaped, with the SSRC the SRS decrypted,
	// but every payload is no part of the tone the caller sent and 10 bytes
	// longer than the caller's (the AES_CM_128_HMAC_SHA1_80 tag, RFC 3711
	// §4.2): SRTP, not plain RTP.
	tone := ulawToneWAV(440, 5)
	tone = tone[len(tone)-8000*5:]
	var decode, ports []string
	ssrcs := map[string]uint32{}
	for _, st := range info.Streams {
		p := strconv.Itoa(st.Port)
		decode = append(decode, "-d", "udp.port=="+p+",rtp")
		ports = append(ports, "udp.dstport=="+p)
		ssrcs[p] = st.SSRC
	}
	perPort, err := srtpCopies(capFile, decode, strings.Join(ports, " || "), tone, ssrcs)
	if err != nil {
		t.Fatalf("the copies toward the SRS: %v", err)
	}
	for _, st := range info.Streams {
		// Stopping tshark may leave the last packets unwritten, never add.
		if got := perPort[strconv.Itoa(st.Port)]; got == 0 || uint64(got) > st.Packets {
			t.Fatalf("tshark saw %d copies toward port %d, the SRS received %d", got, st.Port, st.Packets)
		}
	}
	// The negative control: the same check on the plain RTP the caller
	// sent toward recforkd's media ports must fail, for both reasons.
	_, err = srtpCopies(callerCap, []string{"-d", "udp.port==30000-30999,rtp"}, "udp.dstport >= 30000 && udp.dstport <= 30999", tone, nil)
	if err == nil || !strings.Contains(err.Error(), "is the caller's tone") || !strings.Contains(err.Error(), "160 bytes") {
		t.Fatalf("the SRTP check passes the caller's plain RTP: %v", err)
	}
}

// srtpCopies reads a capture with tshark, decoding the UDP ports of decode
// as RTP, and checks that each packet filter keeps is SRTP of the G.711
// tone (160 samples a packet): an RTP version 2 header with payload type 0
// and, when ssrcs is set, the SSRC of its destination port; a payload of
// 160 + 10 bytes (the _80 authentication tag) whose first 160 bytes appear
// nowhere in the tone, as they would in plain RTP. It returns how many
// packets it checked per destination port, or every kind of fault it met.
func srtpCopies(capFile string, decode []string, filter string, tone []byte, ssrcs map[string]uint32) (map[string]int, error) {
	args := append([]string{"-r", capFile}, decode...)
	args = append(args, "-Y", "rtp && ("+filter+")", "-T", "fields",
		"-e", "udp.dstport", "-e", "rtp.version", "-e", "rtp.p_type", "-e", "rtp.ssrc", "-e", "rtp.payload")
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("tshark %v: %w", args, err)
	}
	// sipp plays the file in a loop: a packet may span the end and start.
	loop := append(append([]byte{}, tone...), tone[:160]...)
	faults := map[string]int{}
	perPort := map[string]int{}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			continue
		}
		n++
		port, version, pt, ssrc := f[0], f[1], f[2], f[3]
		perPort[port]++
		payload, err := hex.DecodeString(strings.ReplaceAll(f[4], ":", ""))
		if err != nil {
			return perPort, fmt.Errorf("payload %q: %w", f[4], err)
		}
		if version != "2" || pt != "0" {
			faults[fmt.Sprintf("version %s, payload type %s", version, pt)]++
		}
		if want, ok := ssrcs[port]; ok && ssrc != fmt.Sprintf("0x%08x", want) {
			faults[fmt.Sprintf("port %s: ssrc %s, the SRS decoded 0x%08x", port, ssrc, want)]++
		}
		if len(payload) != 160+10 {
			faults[fmt.Sprintf("payload of %d bytes, not 160 + a 10-byte tag", len(payload))]++
		}
		if len(payload) >= 160 && bytes.Contains(loop, payload[:160]) {
			faults["payload is the caller's tone in clear"]++
		}
	}
	if n < 50 {
		return perPort, fmt.Errorf("only %d RTP packets in the capture", n)
	}
	if len(faults) > 0 {
		return perPort, fmt.Errorf("%d packets: %v", n, faults)
	}
	return perPort, nil
}

// opensslOptions sends one OPTIONS over openssl s_client from ns (the
// caller's side, 10.201.1.1), verifying the server's certificate against
// caFile and ip, and returns the status line of the answer.
func opensslOptions(t *testing.T, ns *testenv.Netns, addr, ip, caFile string) string {
	t.Helper()
	status, complaint := opensslSIP(t, func(context.Context) *exec.Cmd {
		return ns.Exec("openssl", "s_client", "-connect", addr, "-CAfile", caFile, "-verify_return_error", "-verify_ip", ip, "-quiet", "-ign_eof")
	}, addr, "10.201.1.1")
	if status == "" {
		t.Fatalf("no answer over TLS from %s; openssl: %s", addr, complaint)
	}
	return status
}
