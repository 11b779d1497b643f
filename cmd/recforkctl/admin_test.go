package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/dataplane"
)

func init() {
	// sipgo's package-global logger would fill the test output.
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
}

func ctl(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestAdminCommandsAgainstDaemon runs the admin commands against a real
// recforkd service (userspace engine, built-in SRS) during a real call.
func TestAdminCommandsAgainstDaemon(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	svc, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen: "127.0.0.1:0", Admin: sock, RecordingsDir: filepath.Join(dir, "rec"), Dataplane: "userspace",
		RTPPorts: dataplane.PortRange{Min: 33000, Max: 33999},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()

	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	stop := make(chan struct{})
	callDone := make(chan callgen.Result, 1)
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-stop; cancel() }()
		callDone <- caller.Call(ctx, "sip:ctl@"+svc.Daemon().SIPAddr().String(), callgen.CallOptions{Duration: 30 * time.Second})
	}()

	// Wait for the call's recording to be active in both directions.
	var recs []controlplane.RecordingInfo
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, errs := ctl("recordings", "--admin", sock, "--json")
		if code != 0 {
			t.Fatalf("recordings: %d %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && recs[0].Inbound == "active" && recs[0].Outbound == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no active recording: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn := recs[0].ConnectionID
	for _, st := range recs[0].Streams {
		if st.Path != "userspace" {
			t.Fatalf("stream %s copies on path %q, want userspace", st.Direction, st.Path)
		}
	}

	// The echoing caller's media paths: relayed to itself and to its DTMF
	// tap, copied both ways, all by the userspace engine.
	code, out, errs := ctl("calls", "--admin", sock, "--json")
	var calls []controlplane.CallInfo
	if err := json.Unmarshal([]byte(out), &calls); code != 0 || err != nil {
		t.Fatalf("calls: %d %v %s", code, err, errs)
	}
	if len(calls) != 1 || len(calls[0].Connections) != 1 || calls[0].Connections[0].MediaPath == nil {
		t.Fatalf("calls: %s", out)
	}
	mp := calls[0].Connections[0].MediaPath
	tos := map[string]string{}
	for _, r := range mp.Relays {
		tos[r.To] = r.Path
	}
	if mp.Relay != "userspace" || mp.RelayReason == "" || len(tos) != 2 || tos[conn] != "userspace" || tos["dtmf-tap:"+conn] != "userspace" ||
		len(mp.Copies) != 2 || mp.Copies[0].Direction != "inbound" || mp.Copies[0].Path != "userspace" || mp.Copies[1].Path != "userspace" {
		t.Fatalf("media path %+v", mp)
	}

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"status json", []string{"status", "--admin", sock, "--json"}, 0, `"engine": "userspace"`},
		{"status table", []string{"status", "--admin", sock}, 0, "userspace"},
		{"calls", []string{"calls", "--admin", sock}, 0, conn},
		{"calls json", []string{"calls", "--admin", sock, "--json"}, 0, `"state": "CONNECTED"`},
		{"calls columns", []string{"calls", "--admin", sock}, 0, "in:userspace,out:userspace  userspace (userspace engine)"},
		{"calls paths", []string{"calls", "--admin", sock, "--paths"}, 0, "dtmf-tap:" + conn + "  userspace  userspace engine"},
		{"sessions", []string{"sessions", "--admin", sock, "--json"}, 0, `"startup_mode": "newcall"`},
		{"stats", []string{"stats", "--admin", sock}, 0, "packets copied"},
		{"recordings table", []string{"recordings", "--admin", sock}, 0, "inbound"},
		{"recordings path", []string{"recordings", "--admin", sock, "--json"}, 0, `"path": "userspace"`},
		{"mute inbound", []string{"record", "mute", conn, "--direction", "inbound", "--admin", sock}, 0, "inactive"},
		{"mute json", []string{"record", "mute", conn, "--admin", sock, "--direction", "outbound", "--json"}, 0, `"outbound": "inactive"`},
		{"unmute both", []string{"record", "unmute", "--admin", sock, conn}, 0, "active"},
		{"unknown connection", []string{"record", "mute", "c999", "--admin", sock}, exitNotFound, "no such connection"},
		{"bad direction", []string{"record", "mute", conn, "--direction", "sideways", "--admin", sock}, exitUsage, "direction"},
		{"bad action", []string{"record", "pause", conn}, exitUsage, "unknown action"},
		{"no daemon", []string{"status", "--admin", filepath.Join(dir, "none.sock")}, exitUnreachable, "unreachable"},
		{"stop", []string{"record", "stop", conn, "--admin", sock}, 0, "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := ctl(c.args...)
			if code != c.code || !strings.Contains(out+errs, c.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, c.code, c.want, out, errs)
			}
		})
	}
	close(stop)
	if r := <-callDone; r.Status != 200 || r.Received == 0 {
		t.Fatalf("call: %+v", r)
	}
}
