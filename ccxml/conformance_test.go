package ccxml_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/ccxml/sim"
)

var (
	expectCode = regexp.MustCompile(`<!-- expect-code: (\d) -->`)
	dtmfKeys   = regexp.MustCompile(`<!-- dtmf: ([0-9*#A-D]+) -->`)
)

// TestConformance runs every document of testdata/conformance through the
// interpreter and the simulated platform, with an inbound call delivered.
// Each document logs PASS or "FAIL: why"; a FAIL, a missing PASS or an
// unexpected exit code fails the test.
func TestConformance(t *testing.T) {
	files, err := filepath.Glob("testdata/conformance/*.ccxml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance documents: %v", err)
	}
	in, err := ccxml.New(ccxml.Config{ScriptBudget: 200 * time.Millisecond, MaxCallStackSize: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	t.Logf("%d conformance documents", len(files))
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".ccxml"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if m := expectCode.FindSubmatch(src); m != nil {
				want, _ = strconv.Atoi(string(m[1]))
			}
			var simCfg sim.Config
			if m := dtmfKeys.FindSubmatch(src); m != nil {
				simCfg.DTMF = string(m[1])
			}
			abs, _ := filepath.Abs(f)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			doc, err := in.Load(ctx, abs)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var mu sync.Mutex
			var lines []string
			res := sim.Run(ctx, in, doc, sim.RunOptions{From: "sip:alice@127.0.0.1", To: "sip:recfork@127.0.0.1", Platform: simCfg,
				Log: func(label, value string) {
					mu.Lock()
					defer mu.Unlock()
					if label != "" {
						value = label + ": " + value
					}
					lines = append(lines, value)
				}})
			mu.Lock()
			defer mu.Unlock()
			pass := false
			for _, l := range lines {
				if strings.HasPrefix(l, "FAIL") {
					t.Errorf("%s", l)
				}
				if l == "PASS" {
					pass = true
				}
			}
			if !pass {
				t.Errorf("no PASS verdict; log: %q", lines)
			}
			if res.Code != want {
				t.Errorf("exit code %d (%+v, %v), want %d; log: %q", res.Code, res.Status, res.Err, want, lines)
			}
		})
	}
}
