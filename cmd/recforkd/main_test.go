package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

func TestParseConfigFile(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []configEntry
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"comments and blanks", "# hi\n\n   # more\n", nil, false},
		{"equals", "listen = 127.0.0.1:5070\n", []configEntry{{"listen", "127.0.0.1:5070", 1}}, false},
		{"space", "dataplane userspace", []configEntry{{"dataplane", "userspace", 1}}, false},
		{"quoted", `app = "/etc/recfork/app.ccxml"`, []configEntry{{"app", "/etc/recfork/app.ccxml", 1}}, false},
		{"dashes", "--srs=sip:srs@10.0.0.9", []configEntry{{"srs", "sip:srs@10.0.0.9", 1}}, false},
		{"no value", "listen\n", nil, true},
		{"bad key", `"x" = 1`, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfigFile([]byte(c.in))
			if (err != nil) != c.wantErr {
				t.Fatalf("err %v", err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %+v", got)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %+v, want %+v", got[i], c.want[i])
				}
			}
		})
	}
}

func TestFlagsWinOverConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "recforkd.conf")
	if err := os.WriteFile(p, []byte("listen = 127.0.0.1:6000\nrtp-ports = 40000-40099\ndataplane = userspace\nlatch = nat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := newOptions(io.Discard)
	if err := o.parse([]string{"--config", p, "--listen", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config2()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.RTPPorts.Min != 40000 || cfg.Dataplane != "userspace" || cfg.Latch != dataplane.LatchNAT {
		t.Fatalf("cfg %+v", cfg)
	}
	for name, content := range map[string]string{"unknown key": "bogus = 1\n", "bad range": "rtp-ports = 9-1\n"} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			o := newOptions(io.Discard)
			err := o.parse([]string{"--config", p})
			if err == nil {
				_, err = o.config2()
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--dataplane", "magic"}, {"--latch", "symmetric"}, {"--rtp-ports", "x"}, {"--log-level", "loud"}, {"stray"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if code := run(args, io.Discard); code != 2 {
				t.Fatalf("exit %d, want 2", code)
			}
		})
	}
	if code := run([]string{"--help"}, io.Discard); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
}

func FuzzParseConfigFile(f *testing.F) {
	f.Add([]byte("listen = 127.0.0.1:5060\n# c\napp \"x\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseConfigFile(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.key == "" || strings.ContainsAny(e.key, " \t\"") {
				t.Fatalf("bad key %q", e.key)
			}
		}
	})
}
