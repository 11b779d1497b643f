package perf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSoakTolerance(t *testing.T) {
	start := SoakResources{Goroutines: 30, FDs: 20, UDPPorts: 4, RSSBytes: 20 << 20}
	for _, tc := range []struct {
		name string
		end  func(r *SoakResources)
		want string // substring of the one failure, "" for none
	}{
		{"back to start", func(r *SoakResources) {}, ""},
		{"a few goroutines more", func(r *SoakResources) { r.Goroutines += SoakTolerance.Goroutines }, ""},
		{"goroutines leaked", func(r *SoakResources) { r.Goroutines += SoakTolerance.Goroutines + 1 }, "goroutines"},
		{"descriptors leaked", func(r *SoakResources) { r.FDs += SoakTolerance.FDs + 1 }, "file descriptors"},
		{"one port kept", func(r *SoakResources) { r.UDPPorts++ }, "udp ports"},
		{"one fork kept", func(r *SoakResources) { r.Forks = 1 }, "forks"},
		{"rss grew", func(r *SoakResources) { r.RSSBytes += SoakTolerance.RSSBytes + 1 }, "rss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := start
			tc.end(&end)
			got := withinTolerance(start, end)
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)) {
				t.Fatalf("failures %q, want one about %q", got, tc.want)
			}
		})
	}
}

func TestCountTCPSkipsTimeWait(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tcp")
	table := "  sl  local_address rem_address   st\n" +
		"   0: 0200A8C0:13C4 00000000:0000 0A\n" +
		"   1: 0200A8C0:13C4 0100A8C0:D431 01\n" +
		"   2: 0200A8C0:13C4 0100A8C0:D432 06\n"
	if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := countTCP(p); n != 2 {
		t.Fatalf("countTCP = %d, want 2 (listen and established)", n)
	}
	if n := countLines(p); n != 3 {
		t.Fatalf("countLines = %d, want 3", n)
	}
}

func TestSrsReceived(t *testing.T) {
	dir := t.TempDir()
	for i, js := range []string{`{"Streams":[{"Packets":10},{"Packets":5}]}`, `{"Streams":[{"Packets":7}]}`} {
		d := filepath.Join(dir, string(rune('a'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "session.json"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n, pk := srsReceived(dir); n != 2 || pk != 22 {
		t.Fatalf("srsReceived = %d sessions, %d packets; want 2, 22", n, pk)
	}
}
