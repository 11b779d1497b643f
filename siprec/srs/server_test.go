package srs

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// startServer runs an SRS on loopback and closes it at cleanup, checking
// that its goroutines are gone.
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	srv, err := New(Config{Listen: "127.0.0.1:0", Dir: dir, PortRange: PortRange{Min: 41000, Max: 41999},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("run: %v", err)
		}
		srv.Close()
	})
	return srv, dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readWAV returns the samples of a WAV file this package wrote, checking
// the header against the file size.
func readWAV(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < wavHeaderSize || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[36:40]) != "data" {
		t.Fatalf("%s: not a wav file", path)
	}
	data := binary.LittleEndian.Uint32(b[40:])
	if int(data) != len(b)-wavHeaderSize || binary.LittleEndian.Uint32(b[4:]) != 36+data {
		t.Fatalf("%s: header sizes riff=%d data=%d, file %d bytes", path, binary.LittleEndian.Uint32(b[4:]), data, len(b))
	}
	out := make([]int16, data/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[wavHeaderSize+2*i:]))
	}
	return out
}

func findSession(snap []SessionInfo, callID string) (SessionInfo, bool) {
	for _, s := range snap {
		if s.CallID == callID {
			return s, true
		}
	}
	return SessionInfo{}, false
}

// checkAudio compares a stream's file with what the sender sent: every
// sent packet's samples where its timestamp puts them, silence elsewhere.
func checkAudio(t *testing.T, samples []int16, si StreamInfo, snd *rtpSender, firstTS uint32) {
	t.Helper()
	want := make([]int16, len(samples))
	var end int64
	for ts, payload := range snd.sent {
		pos := si.StartOffset + int64(ts-firstTS)
		for i, b := range payload {
			if int(pos)+i < len(want) {
				want[int(pos)+i] = ulawTable[b]
			}
		}
		end = max(end, pos+int64(len(payload)))
	}
	if int64(len(samples)) != end {
		t.Fatalf("%s: %d samples, want %d (start offset %d + timestamp span)", si.Label, len(samples), end, si.StartOffset)
	}
	for i := range want {
		if samples[i] != want[i] {
			t.Fatalf("%s: sample %d = %d, want %d", si.Label, i, samples[i], want[i])
		}
	}
}

func TestRecordCall(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			srv, dir := startServer(t)
			ctx := waitCtx(t)
			src := newTestSRC(t, srv.Addr().String(), transport)
			labels := []string{"10", "20"}

			res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
				multipartBody(src.sdpOffer([]string{"sendonly", "sendonly"}, labels, nil), testMetadata("complete", labels...)))
			if res.StatusCode != 200 {
				t.Fatalf("invite: %d %s", res.StatusCode, res.Reason)
			}
			if c := res.Contact(); c == nil || !c.Params.Has("+sip.srs") {
				t.Fatalf("answer contact %v lacks +sip.srs", res.Contact())
			}
			ports, dirs := answerPorts(t, res)
			if len(ports) != 2 || dirs[0] != "recvonly" || dirs[1] != "recvonly" || ports[0] == 0 || ports[1] == 0 {
				t.Fatalf("answer ports %v dirs %v\n%s", ports, dirs, res.Body())
			}
			if !strings.Contains(string(res.Body()), "a=label:10") || !strings.Contains(string(res.Body()), "a=label:20") {
				t.Fatalf("answer lost labels:\n%s", res.Body())
			}

			a := newRTPSender(t, ports[0], 0x1111, 440)
			b := newRTPSender(t, ports[1], 0x2222, 1000)
			a0, b0 := a.ts, b.ts
			a.send(t, 25)
			b.send(t, 25)
			waitPackets(t, ctx, srv, src.callID, 25, 25)

			// Pause direction 10 (RFC 7866 §7.1.1: re-INVITE inactive), let
			// 400 ms of its clock pass with no packets, resume.
			src.version++
			res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"inactive", "sendonly"}, labels, nil))
			if res.StatusCode != 200 {
				t.Fatalf("pause re-invite: %d %s", res.StatusCode, res.Reason)
			}
			if p, d := answerPorts(t, res); d[0] != "inactive" || d[1] != "recvonly" || p[0] != ports[0] || p[1] != ports[1] {
				t.Fatalf("pause answer ports %v dirs %v", p, d)
			}
			a.skip(3200)
			b.send(t, 20)
			src.version++
			res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly", "sendonly"}, labels, nil))
			if res.StatusCode != 200 {
				t.Fatalf("resume re-invite: %d %s", res.StatusCode, res.Reason)
			}
			a.send(t, 25)
			b.send(t, 5)
			waitPackets(t, ctx, srv, src.callID, 50, 50)

			if res := src.bye(ctx); res.StatusCode != 200 {
				t.Fatalf("bye: %d", res.StatusCode)
			}
			snap, err := srv.WaitFor(ctx, func(s []SessionInfo) bool {
				si, ok := findSession(s, src.callID)
				return ok && si.State == StateEnded
			})
			if err != nil {
				t.Fatal(err)
			}
			si, _ := findSession(snap, src.callID)
			if si.EndReason != EndByeFromSRC || si.Transport != transport {
				t.Fatalf("end reason %q transport %q", si.EndReason, si.Transport)
			}
			if len(si.Violations) != 0 {
				t.Fatalf("violations on a clean call: %+v", si.Violations)
			}
			if len(si.Streams) != 2 || si.Streams[0].Label != "10" || si.Streams[1].Label != "20" {
				t.Fatalf("streams %+v", si.Streams)
			}
			for _, st := range si.Streams {
				if st.Mode != ModeEnded || st.Lost != 0 || st.Duplicates != 0 || st.Packets != 50 || st.Bytes != 50*160 {
					t.Fatalf("stream %+v", st)
				}
			}
			checkAudio(t, readWAV(t, filepath.Join(dir, si.ID, "stream0.wav")), si.Streams[0], a, a0)
			checkAudio(t, readWAV(t, filepath.Join(dir, si.ID, "stream1.wav")), si.Streams[1], b, b0)
			// The pause left silence, not missing time: the span of stream 10
			// covers its 3200 skipped samples.
			if got, want := si.Streams[0].Samples-si.Streams[0].StartOffset, int64(50*160+3200); got != want {
				t.Fatalf("stream 10 spans %d samples, want %d", got, want)
			}
			meta, err := os.ReadFile(filepath.Join(dir, si.ID, "metadata.xml"))
			if err != nil || string(meta) != testMetadata("complete", labels...) {
				t.Fatalf("metadata.xml = %q, %v", meta, err)
			}
			if _, err := os.Stat(filepath.Join(dir, si.ID, "session.json")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func waitPackets(t *testing.T, ctx context.Context, srv *Server, callID string, want ...uint64) {
	t.Helper()
	_, err := srv.WaitFor(ctx, func(s []SessionInfo) bool {
		si, ok := findSession(s, callID)
		if !ok || len(si.Streams) < len(want) {
			return false
		}
		for i, w := range want {
			if si.Streams[i].Packets < w {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("wait for packets %v: %v", want, err)
	}
}

func TestSRSBye(t *testing.T) {
	srv, _ := startServer(t)
	ctx := waitCtx(t)
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			src := newTestSRC(t, srv.Addr().String(), transport)
			res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
				multipartBody(src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil), testMetadata("complete", "1")))
			if res.StatusCode != 200 {
				t.Fatalf("invite: %d", res.StatusCode)
			}
			snap, err := srv.WaitFor(ctx, func(s []SessionInfo) bool { _, ok := findSession(s, src.callID); return ok })
			if err != nil {
				t.Fatal(err)
			}
			si, _ := findSession(snap, src.callID)
			if err := srv.Bye(ctx, si.ID); err != nil {
				t.Fatalf("bye: %v", err)
			}
			select {
			case req := <-src.byes:
				if req.CallID().Value() != src.callID || tagOf(req.From().Params) != src.toTag || tagOf(req.To().Params) != src.fromTag {
					t.Fatalf("bye dialog headers wrong:\n%s", req)
				}
			case <-ctx.Done():
				t.Fatal("no BYE reached the SRC")
			}
			if err := srv.Bye(ctx, si.ID); !errors.Is(err, ErrNoSession) {
				t.Fatalf("second bye: %v, want ErrNoSession", err)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	srv, dir := startServer(t)
	ctx := waitCtx(t)
	offer := "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
	meta := testMetadata("complete", "1")
	cases := []struct {
		name      string
		noRequire bool
		ct, body  string
		code      int
		reason    string
		header    string // a header the response must carry, "Name: value"
	}{
		{"no require", true, "multipart/mixed;boundary=" + testBoundary, multipartBody(offer, meta), 421, "Extension Required", "Require: siprec"},
		{"sdp only", false, "application/sdp", offer, 400, "Missing Recording Metadata", ""},
		{"no body", false, "", "", 400, "Missing SIPREC Body", ""},
		{"no metadata part", false, "multipart/mixed;boundary=b", "--b\r\nContent-Type: application/sdp\r\n\r\n" + offer + "\r\n--b--\r\n", 400, "Missing Recording Metadata", ""},
		{"no sdp part", false, "multipart/mixed;boundary=b", "--b\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + meta + "\r\n--b--\r\n", 400, "Missing SDP Part", ""},
		{"no boundary", false, "multipart/mixed", multipartBody(offer, meta), 400, "Malformed Multipart Body", ""},
		{"bad xml", false, "multipart/mixed;boundary=" + testBoundary, multipartBody(offer, "<recording><datamode>"), 400, "Malformed Recording Metadata", ""},
		{"bad sdp", false, "multipart/mixed;boundary=" + testBoundary, multipartBody("hello", meta), 400, "Malformed SDP", ""},
		{"text body", false, "text/plain", "hello", 415, "Unsupported Media Type", "Accept: " + acceptTypes},
		{"video only", false, "multipart/mixed;boundary=" + testBoundary, multipartBody(strings.Replace(offer, "m=audio", "m=video", 1), meta), 488, "Not Acceptable Here", ""},
	}
	for _, transport := range []string{"UDP", "TCP"} {
		for _, c := range cases {
			t.Run(transport+"/"+c.name, func(t *testing.T) {
				src := newTestSRC(t, srv.Addr().String(), transport)
				src.noRequire = c.noRequire
				res := src.invite(ctx, c.ct, c.body)
				if res.StatusCode != c.code || res.Reason != c.reason {
					t.Fatalf("got %d %q, want %d %q", res.StatusCode, res.Reason, c.code, c.reason)
				}
				if c.header != "" {
					name, value, _ := strings.Cut(c.header, ": ")
					if h := res.GetHeader(name); h == nil || h.Value() != value {
						t.Fatalf("response lacks %q:\n%s", c.header, res)
					}
				}
			})
		}
	}
	rej := srv.Rejections()
	if len(rej) != 2*len(cases) {
		t.Fatalf("%d rejections recorded, want %d", len(rej), 2*len(cases))
	}
	if r := rej[0]; r.Code != 421 || r.Reason != "Extension Required" || r.ReInvite || r.CallID == "" {
		t.Fatalf("first rejection %+v", r)
	}
	if len(srv.Sessions()) != 0 {
		t.Fatalf("rejected invites left sessions: %+v", srv.Sessions())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("rejected invites left directories: %v", entries)
	}
}

func TestMain(m *testing.M) {
	// Short SIP timers keep the retransmission and no-ACK tests quick;
	// everything runs on loopback.
	sip.SetTimers(50*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	code := m.Run()
	os.Exit(code)
}
