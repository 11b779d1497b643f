package srs

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func rules(vs []Violation) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return strings.Join(out, ",")
}

func sessionOf(t *testing.T, ctx context.Context, srv *Server, callID string, cond func(SessionInfo) bool) SessionInfo {
	t.Helper()
	snap, err := srv.WaitFor(ctx, func(s []SessionInfo) bool {
		si, ok := findSession(s, callID)
		return ok && cond(si)
	})
	if err != nil {
		t.Fatalf("wait for session %s: %v", callID, err)
	}
	si, _ := findSession(snap, callID)
	return si
}

func TestStrictViolations(t *testing.T) {
	srv, _ := startServer(t)
	ctx := waitCtx(t)
	src := newTestSRC(t, srv.Addr().String(), "UDP")
	src.noSrcTag = true
	mp := "multipart/mixed;boundary=" + testBoundary

	res := src.invite(ctx, mp, multipartBody(src.sdpOffer([]string{"sendrecv", "sendonly"}, []string{"1", "2"}, nil), testMetadata("partial", "1", "2")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d %s", res.StatusCode, res.Reason)
	}
	si := sessionOf(t, ctx, srv, src.callID, func(SessionInfo) bool { return true })
	if got, want := rules(si.Violations), RuleSendRecvOffered+","+RuleNoSrcFeature+","+RuleFirstNotComplete; got != want {
		t.Fatalf("violations %s, want %s", got, want)
	}

	// Same o= version, changed content (a label moved): two breaches.
	res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly", "sendonly"}, []string{"1", "9"}, nil))
	if res.StatusCode != 200 {
		t.Fatalf("re-invite: %d", res.StatusCode)
	}
	// Fewer m-lines than before.
	src.version++
	res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil))
	if res.StatusCode != 200 {
		t.Fatalf("re-invite: %d", res.StatusCode)
	}
	if ports, _ := answerPorts(t, res); len(ports) != 1 {
		t.Fatalf("answer to a 1-m-line offer has %d m-lines", len(ports))
	}
	si = sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return len(si.Violations) >= 6 })
	want := strings.Join([]string{RuleSendRecvOffered, RuleNoSrcFeature, RuleFirstNotComplete,
		RuleVersionNotBumped, RuleLabelChanged, RuleMLinesShrunk}, ",")
	if got := rules(si.Violations); got != want {
		t.Fatalf("violations\n got %s\nwant %s", got, want)
	}
	if si.Streams[1].Mode != ModeEnded {
		t.Fatalf("dropped m-line's stream is %s", si.Streams[1].Mode)
	}
}

func TestLenient(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(Config{Dir: dir, Lenient: true, PortRange: PortRange{Min: 42000, Max: 42099}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	src := newTestSRC(t, srv.Addr().String(), "UDP")
	src.noSrcTag = true
	res := src.invite(waitCtx(t), "multipart/mixed;boundary="+testBoundary,
		multipartBody(src.sdpOffer([]string{"sendrecv"}, []string{"1"}, nil), testMetadata("partial", "1")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	si := sessionOf(t, waitCtx(t), srv, src.callID, func(SessionInfo) bool { return true })
	if len(si.Violations) != 0 {
		t.Fatalf("lenient server recorded %v", si.Violations)
	}
}

func TestReInviteStreams(t *testing.T) {
	srv, dir := startServer(t)
	ctx := waitCtx(t)
	src := newTestSRC(t, srv.Addr().String(), "TCP")
	mp := "multipart/mixed;boundary=" + testBoundary
	res := src.invite(ctx, mp, multipartBody(src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil), testMetadata("complete", "1")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	first, _ := parseOffer(res.Body())
	p1, _ := answerPorts(t, res)

	// A stream appended later (RFC 7866 §7.1.1) with new metadata.
	src.version++
	res = src.invite(ctx, mp, multipartBody(src.sdpOffer([]string{"sendonly", "sendonly"}, []string{"1", "2"}, nil), testMetadata("complete", "1", "2")))
	if res.StatusCode != 200 {
		t.Fatalf("append re-invite: %d", res.StatusCode)
	}
	second, _ := parseOffer(res.Body())
	p2, d2 := answerPorts(t, res)
	if len(p2) != 2 || p2[0] != p1[0] || p2[1] == 0 || p2[1] == p1[0] || d2[1] != dirRecvOnly {
		t.Fatalf("ports %v then %v dirs %v", p1, p2, d2)
	}
	if second.version <= first.version {
		t.Fatalf("changed answer kept o= version %d", second.version)
	}
	// A refresh with the same offer: same answer, same version.
	res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly", "sendonly"}, []string{"1", "2"}, nil))
	if refresh, _ := parseOffer(res.Body()); res.StatusCode != 200 || refresh.version != second.version {
		t.Fatalf("refresh: %d, version %d after %d", res.StatusCode, refresh.version, second.version)
	}

	b := newRTPSender(t, p2[1], 7, 700)
	b.send(t, 3)
	waitPackets(t, ctx, srv, src.callID, 0, 3)

	// The second stream refused with port 0 (RFC 3264 §8.2): its file ends.
	src.version++
	res = src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly", "sendonly"}, []string{"1", "2"}, []int{30000, 0}))
	p3, _ := answerPorts(t, res)
	if res.StatusCode != 200 || p3[0] != p1[0] || p3[1] != 0 {
		t.Fatalf("port-0 re-invite: %d ports %v", res.StatusCode, p3)
	}
	si := sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return len(si.Streams) == 2 && si.Streams[1].Mode == ModeEnded })
	if si.Streams[0].Mode != ModeRecvOnly || si.MetadataUpdates != 2 || len(si.Violations) != 0 {
		t.Fatalf("session %+v", si)
	}
	if got := readWAV(t, filepath.Join(dir, si.ID, "stream1.wav")); len(got) != 3*160+int(si.Streams[1].StartOffset) {
		t.Fatalf("stream1.wav has %d samples", len(got))
	}
	if !strings.Contains(string(si.Metadata), "<label>2</label>") {
		t.Fatalf("metadata not updated: %s", si.Metadata)
	}
	if res := src.bye(ctx); res.StatusCode != 200 {
		t.Fatalf("bye: %d", res.StatusCode)
	}
	// An in-dialog request after the end.
	if res := src.invite(ctx, "application/sdp", src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil)); res.StatusCode != 481 {
		t.Fatalf("re-invite after bye: %d", res.StatusCode)
	}
}

// TestShutdownReleasesEverything ends a live call by cancelling Run: the
// SRC gets a BYE, files are final, ports and goroutines are released.
func TestShutdownReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	srv, err := New(Config{Dir: dir, PortRange: PortRange{Min: 43000, Max: 43099}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	ctx := waitCtx(t)

	src := newTestSRC(t, srv.Addr().String(), "UDP")
	res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
		multipartBody(src.sdpOffer([]string{"sendonly", "sendonly"}, []string{"a", "b"}, nil), testMetadata("complete", "a", "b")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	ports, _ := answerPorts(t, res)
	newRTPSender(t, ports[0], 1, 300).send(t, 5)
	waitPackets(t, ctx, srv, src.callID, 5)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	select {
	case <-src.byes:
	case <-ctx.Done():
		t.Fatal("shutdown sent no BYE")
	}
	si, _ := findSession(srv.Sessions(), src.callID)
	if si.State != StateEnded || si.EndReason != EndShutdown {
		t.Fatalf("after shutdown: %s %s", si.State, si.EndReason)
	}
	readWAV(t, filepath.Join(dir, si.ID, "stream0.wav"))
	if _, err := srv.WaitFor(ctx, func([]SessionInfo) bool { return false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitFor after close: %v", err)
	}
	if err := srv.Bye(ctx, si.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Bye after close: %v", err)
	}
	for _, p := range append(ports, ports[0]+1, ports[1]+1) {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			t.Fatalf("port %d still held: %v", p, err)
		}
		c.Close()
	}
	for _, nw := range []string{"udp", "tcp"} {
		if nw == "udp" {
			c, err := net.ListenPacket(nw, srv.Addr().String())
			if err != nil {
				t.Fatalf("sip %s port still held: %v", nw, err)
			}
			c.Close()
		} else {
			l, err := net.Listen(nw, srv.Addr().String())
			if err != nil {
				t.Fatalf("sip %s port still held: %v", nw, err)
			}
			l.Close()
		}
	}
	src.close()
	// Goroutine exit has no event to wait on: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
