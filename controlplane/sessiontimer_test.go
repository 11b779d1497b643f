package controlplane_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/internal/testenv"
)

// TestSessionRefreshWithSipp: a sipp caller names recfork the session
// refresher (RFC 4028 §9, Session-Expires refresher=uas). Each scenario
// checks what recforkd sends: the 200's refresher=uas, then refreshes by
// UPDATE when the caller allows it (three, each naming recfork refresher)
// or by re-INVITE with an SDP when it does not (ACKed), and a BYE when a
// refresh is answered 481 (§10). The refresh comes after 300 ms; with the
// UPDATE and re-INVITE callers the session would expire 800 ms after the last
// refresh, so only refreshes keep the calls up until sipp hangs up (an
// unexpected BYE fails its scenario); with the 481 caller it would expire
// after 20 s, so the BYE sipp waits for is the answer to the 481.
func TestSessionRefreshWithSipp(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		testenv.Unavailable(t, "sipp (Debian sip-tester) is not installed")
	}
	defer controlplane.SetSessionRefreshAt(300 * time.Millisecond)()
	svc, eng := startService(t, svcOpts{})
	addr := svc.Daemon().SIPAddr().String()
	for _, tc := range []struct {
		scenario string
		expiry   time.Duration
	}{
		{"session-refresh-update.xml", 800 * time.Millisecond},
		{"session-refresh-reinvite.xml", 800 * time.Millisecond},
		{"session-refresh-481.xml", 20 * time.Second},
	} {
		scenario := tc.scenario
		t.Run(scenario, func(t *testing.T) {
			defer controlplane.SetSessionTimerWait(tc.expiry)()
			sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cmd := exec.Command("sipp", "-sf", sf, "-m", "1", "-l", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1",
				"-s", "echo", addr, "-nostdin", "-timeout", "15s", "-timeout_error", "-trace_err")
			cmd.Dir = dir
			logPath := filepath.Join(dir, "sipp.log")
			done := startSipp(t, cmd, logPath)
			t.Cleanup(func() {
				if t.Failed() {
					errs, _ := filepath.Glob(filepath.Join(dir, "*_errors.log"))
					for _, e := range errs {
						b, _ := os.ReadFile(e)
						t.Logf("%s:\n%s", filepath.Base(e), tail(string(b), 40))
					}
				}
			})
			waitSipp(t, done, "sipp "+scenario, logPath)
			waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
		})
	}
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}
