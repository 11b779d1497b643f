package state

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec"
)

// startRedis runs a real redis-server on a unix socket in a temp directory
// and returns the socket; it is stopped when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "redis-server is not installed (.ci/run installs it)")
	}
	dir, err := os.MkdirTemp("", "rst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait until the server answers a PING on its socket.
	for deadline := time.Now().Add(10 * time.Second); ; {
		s, err := New(context.Background(), Config{Addr: sock, Node: "probe"})
		if err == nil {
			s.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func snapshot(id string) siprec.Snapshot {
	return siprec.Snapshot{ConnectionID: id, CallID: "rec-" + id + "@recfork", LocalTag: "l", RemoteTag: "r",
		RemoteTarget: "sip:srs@10.0.0.1:5080", CSeq: 3, MetadataSessionID: "md-" + id,
		Streams: []siprec.SnapshotStream{{Direction: "inbound", Label: "1", StreamID: "s1", Mode: siprec.ModeActive}}}
}

func TestStoreLifecycle(t *testing.T) {
	sock := startRedis(t)
	ctx := context.Background()
	open := func(node string) *Store {
		s, err := New(ctx, Config{Addr: sock, Node: node, Heartbeat: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	for _, s := range []*Store{a, b} {
		if err := s.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"c1", "c2"} {
		if err := a.Put(ctx, snapshot(id)); err != nil {
			t.Fatal(err)
		}
	}
	changed := snapshot("c1")
	changed.CSeq = 4
	if err := a.Put(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Recordings(ctx, "a")
	if err != nil || len(recs) != 1 || recs[0].CSeq != 4 || recs[0].MetadataSessionID != "md-c1" {
		t.Fatalf("a's recordings seen by b: %+v, %v", recs, err)
	}
	// a is alive while it beats; then its heartbeat expires (HeartbeatTTL
	// 150 ms), which b sees.
	if dead, err := b.DeadNodes(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("dead nodes while a beats: %v %v", dead, err)
	}
	var dead []string
	for deadline := time.Now().Add(10 * time.Second); len(dead) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("a's heartbeat never expired")
		}
		if err := b.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if dead, err = b.DeadNodes(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(dead) != 1 || dead[0] != "a" {
		t.Fatalf("dead nodes %v", dead)
	}
	// One standby wins the claim.
	c := open("c")
	if ok, err := b.Claim(ctx, "a"); err != nil || !ok {
		t.Fatalf("b's claim: %v %v", ok, err)
	}
	if ok, err := c.Claim(ctx, "a"); err != nil || ok {
		t.Fatalf("c's claim after b's: %v %v", ok, err)
	}
	if err := b.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if recs, _ := b.Recordings(ctx, "a"); len(recs) != 0 {
		t.Fatalf("a's recordings after release: %+v", recs)
	}
	if dead, _ := c.DeadNodes(ctx); len(dead) != 0 {
		t.Fatalf("dead nodes after release: %v", dead)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no address", Config{Node: "a"}},
		{"no node", Config{Addr: "127.0.0.1:1"}},
		{"node with a colon", Config{Addr: "127.0.0.1:1", Node: "a:b"}},
		{"ttl not above heartbeat ttl", Config{Addr: "127.0.0.1:1", Node: "a", Heartbeat: time.Second, TTL: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(context.Background(), tc.cfg); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("err %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	good, _ := json.Marshal(snapshot("c1"))
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"snapshot", string(good), true},
		{"not json", "{", false},
		{"no dialog", `{"connection_id":"c1"}`, false},
		{"wrong types", `{"connection_id":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := json.Marshal(snapshot("c1"))
	f.Add(good)
	f.Add([]byte(`{"connection_id":"x","call_id":"y","local_tag":"a","remote_tag":"b","remote_target":"sip:x"}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := Decode(b)
		if err == nil && (snap.CallID == "" || snap.RemoteTarget == "") {
			t.Fatalf("decoded a snapshot without a dialog: %+v", snap)
		}
	})
}
