package controlplane_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec/srs"
)

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It waits on the condition, never for a fixed time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	// sipgo's transaction layer logs through a package-global logger; the
	// flood tests would fill the output with it.
	sip.SetDefaultLogger(testLogger(nil))
	os.Exit(m.Run())
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("RECFORK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type svcOpts struct {
	engine      dataplane.Engine
	app         string
	srs         string
	destination string
	// dataplane, when set, makes the service build its own engine
	// ("userspace") instead of using the test engine.
	dataplane string
	// ports is the RTP range of an engine the service builds; zero means
	// 32000-32999.
	ports dataplane.PortRange
	// limits are the service's Limits (zero: the defaults).
	limits controlplane.Limits
}

func startService(t *testing.T, o svcOpts) (*controlplane.Service, dataplane.Engine) {
	t.Helper()
	dir := t.TempDir()
	eng := o.engine
	if eng == nil && o.dataplane == "" {
		te := newTestEngine()
		t.Cleanup(func() { te.Close() })
		eng = te
	}
	cfg := controlplane.Config{
		Listen:        "127.0.0.1:0",
		Engine:        eng,
		Admin:         filepath.Join(dir, "admin.sock"),
		RecordingsDir: filepath.Join(dir, "recordings"),
		App:           o.app,
		SRS:           o.srs,
		Destination:   o.destination,
		Logger:        testLogger(t),
		Dataplane:     o.dataplane,
		RTPPorts:      o.ports,
		Limits:        o.limits,
	}
	if cfg.RTPPorts == (dataplane.PortRange{}) {
		cfg.RTPPorts = dataplane.PortRange{Min: 32000, Max: 32999}
	}
	svc, err := controlplane.NewService(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if eng == nil {
		eng = svc.Daemon().Engine()
	}
	return svc, eng
}

func TestServiceEchoCallIsRecorded(t *testing.T) {
	for _, dp := range []string{"", "userspace"} {
		name := dp
		if name == "" {
			name = "test engine"
		}
		t.Run(name, func(t *testing.T) { testEchoCallIsRecorded(t, dp) })
	}
}

func testEchoCallIsRecorded(t *testing.T, dp string) {
	before := runtime.NumGoroutine()
	svc, eng := startService(t, svcOpts{dataplane: dp})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	to := "sip:echo@" + svc.Daemon().SIPAddr().String()
	r := caller.Call(context.Background(), to, callgen.CallOptions{Tone: 440, Duration: 2 * time.Second})
	if r.Error != "" || r.Status != 200 {
		t.Fatalf("call: %+v", r)
	}
	// Echo: the caller hears its own tone back.
	if r.Received < r.Sent/2 || math.Abs(r.HeardHz-440) > 15 {
		t.Fatalf("echo: sent %d received %d heard %.0f Hz", r.Sent, r.Received, r.HeardHz)
	}
	// The recording ended with the call: the SRS saw the BYE, both
	// directions carried the tone.
	s := waitOneRecording(t, svc)
	if s.EndReason != srs.EndByeFromSRC || len(s.Streams) != 2 {
		t.Fatalf("srs session: end %q, %d streams", s.EndReason, len(s.Streams))
	}
	for _, st := range s.Streams {
		if st.Packets < 50 || st.Path == "" {
			t.Errorf("stream %s: %d packets, file %q", st.Label, st.Packets, st.Path)
		}
	}
	// Nothing is left in the data plane or the daemon.
	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
	if st := eng.Stats(); st.Forks != 0 || st.Joins != 0 {
		t.Fatalf("left in the data plane: %+v", st)
	}
	waitFor(t, "sessions to end", func() bool { return len(svc.Sessions()) == 0 })
	svc.Close()
	caller.Close()
	waitFor(t, "goroutines to return", func() bool { return runtime.NumGoroutine() <= before+5 })
}

// waitOneRecording waits for the built-in SRS to hold exactly one recording
// session, ended, and returns it.
func waitOneRecording(t *testing.T, svc *controlplane.Service) srs.SessionInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := svc.SRS().WaitFor(ctx, func(ss []srs.SessionInfo) bool { return len(ss) == 1 && !ss[0].Ended.IsZero() })
	if err != nil {
		t.Fatalf("the recording did not end: %v", err)
	}
	return ss[0]
}
