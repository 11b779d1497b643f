package controlplane_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testenv"
)

// TestMediaPathLoopbackUnderEBPF: under the eBPF engine a call on loopback
// (never crossing a media interface) is relayed and copied in userspace,
// and the admin API says so and why; the same call under the userspace
// engine says "userspace engine". TestEndToEndInNamespaces checks the
// kernel path of a call across veth pairs.
func TestMediaPathLoopbackUnderEBPF(t *testing.T) {
	testenv.Privileged(t)
	for _, tc := range []struct {
		dp, reason string
	}{
		{controlplane.DataplaneEBPF, "loopback"},
		{controlplane.DataplaneUserspace, "userspace engine"},
	} {
		t.Run(tc.dp, func(t *testing.T) {
			ns, other := testenv.NewNetns(t), testenv.NewNetns(t)
			v := testenv.NewVeth(t, ns, other, "10.204.1.1/24", "10.204.1.2/24")
			dir := t.TempDir()
			admin := filepath.Join(dir, "admin.sock")
			// The engine's programs attach to the veth of a namespace of
			// their own; the call itself runs on this host's loopback.
			var eng dataplane.Engine
			ns.MustDo(t, func() (err error) {
				eng, err = controlplane.NewEngine(tc.dp, controlplane.EngineConfig{
					PortRange: dataplane.PortRange{Min: 34000, Max: 34999}, Interfaces: []string{v.AName}, Logger: testLogger(t)})
				return err
			})
			t.Cleanup(func() { eng.Close() })
			if eng.Name() != tc.dp {
				t.Fatalf("engine %s, want %s", eng.Name(), tc.dp)
			}
			// No DTMF tap: the echo is then the endpoint's only relay, and
			// loopback is what keeps it off the kernel.
			svc, err := controlplane.NewService(context.Background(), controlplane.Config{
				Listen: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1"), Engine: eng, Admin: admin,
				RecordingsDir: filepath.Join(dir, "rec"), DisableDTMF: true, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Close() })
			caller, err := callgen.NewEndpoint("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { caller.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan callgen.Result, 1)
			go func() {
				done <- caller.Call(ctx, "sip:echo@"+svc.Daemon().SIPAddr().String(), callgen.CallOptions{Duration: 30 * time.Second})
			}()
			defer func() {
				cancel()
				if r := <-done; r.Status != 200 || r.Received == 0 {
					t.Errorf("call: %+v", r)
				}
			}()

			var calls []controlplane.CallInfo
			waitFor(t, "a recorded, echoed call", func() bool {
				adminGet(t, admin, "GET", "/v1/calls", &calls)
				if len(calls) != 1 || len(calls[0].Connections) != 1 {
					return false
				}
				// Echoed packets sent, so the caller has heard some by
				// the time it hangs up.
				ci := calls[0].Connections[0]
				return ci.MediaPath != nil && len(ci.MediaPath.Relays) == 1 && len(ci.MediaPath.Copies) == 2 &&
					ci.Stats != nil && ci.Stats.TxPackets >= 10
			})
			ci := calls[0].Connections[0]
			mp := ci.MediaPath
			if mp.Relay != "userspace" || !strings.Contains(mp.RelayReason, tc.reason) || mp.Relays[0].To != ci.ID {
				t.Fatalf("relay path %+v, want userspace to itself because of %q", mp, tc.reason)
			}
			for _, c := range mp.Copies {
				if c.Path != "userspace" || !strings.Contains(c.Reason, tc.reason) {
					t.Fatalf("%s copies: %+v, want userspace because of %q", c.Direction, c, tc.reason)
				}
			}
		})
	}
}
