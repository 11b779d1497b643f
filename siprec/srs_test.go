package siprec

import (
	"context"
	"testing"
	"time"

	"github.com/recfork/recfork/siprec/srs"
)

// builtinSRS runs recfork's own SRS (strict mode: it records SIPREC rule
// breaches as violations) on loopback.
func builtinSRS(t *testing.T) *srs.Server {
	t.Helper()
	s, err := srs.New(srs.Config{Listen: "127.0.0.1:0", Dir: t.TempDir(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func waitSRS(t *testing.T, s *srs.Server, what string, cond func([]srs.SessionInfo) bool) []srs.SessionInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := s.WaitFor(ctx, cond)
	if err != nil {
		t.Fatalf("srs never saw %s: %v; sessions: %+v", what, err, s.Sessions())
	}
	return ss
}

func noViolations(t *testing.T, ss []srs.SessionInfo) {
	t.Helper()
	for _, si := range ss {
		if len(si.Violations) > 0 {
			t.Errorf("srs session %s: violations %+v", si.ID, si.Violations)
		}
	}
}

// TestBuiltinSRS runs the client against the built-in SRS over UDP and TCP:
// start, mute, remove and re-add a direction, stop, and an SRS-side BYE,
// with the SRS checking the SIPREC rules all along.
func TestBuiltinSRS(t *testing.T) {
	for _, tp := range []string{"", ";transport=tcp"} {
		name := "udp"
		if tp != "" {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			s := builtinSRS(t)
			uri := "sip:srs@" + s.Addr().String() + tp

			h.record(t, uri, "active", "active")
			expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeActive)
			ss := waitSRS(t, s, "a live session with two labels", func(ss []srs.SessionInfo) bool {
				return len(ss) == 1 && ss[0].State == srs.StateActive && len(ss[0].Labels) == 2
			})
			if tp != "" && ss[0].Transport != "TCP" {
				t.Errorf("transport %s", ss[0].Transport)
			}
			st, _ := h.c.Status("conn1")
			if st.Streams[0].Recorder.Port() != uint16(ss[0].Streams[0].Port) {
				t.Errorf("fork goes to %v, srs listens on %d", st.Streams[0].Recorder, ss[0].Streams[0].Port)
			}

			h.record(t, uri, "inactive", "")
			expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
			h.record(t, uri, "", "none")
			expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeNone)
			h.record(t, uri, "active", "active")
			expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeActive, ModeActive)
			waitSRS(t, s, "four metadata documents", func(ss []srs.SessionInfo) bool {
				return len(ss) == 1 && ss[0].MetadataUpdates >= 4
			})
			h.record(t, uri, "none", "none")
			expect(t, h.wait(t), EventUpdate, OpStop, "", ModeNone, ModeNone)
			ss = waitSRS(t, s, "the session ended by the SRC", func(ss []srs.SessionInfo) bool {
				return len(ss) == 1 && ss[0].State == srs.StateEnded
			})
			if ss[0].EndReason != srs.EndByeFromSRC {
				t.Errorf("end reason %q", ss[0].EndReason)
			}
			noViolations(t, ss)

			// The SRS hangs up a second session on its side.
			h.record(t, uri, "active", "")
			expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeNone)
			ss = waitSRS(t, s, "a second live session", func(ss []srs.SessionInfo) bool {
				return len(ss) == 2 && ss[1].State == srs.StateActive
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Bye(ctx, ss[1].ID); err != nil {
				t.Fatal(err)
			}
			expect(t, h.wait(t), EventError, "", ReasonSRSEnded, ModeNone, ModeNone)
			noViolations(t, s.Sessions())
		})
	}
}
