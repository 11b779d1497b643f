package controlplane

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testenv"
)

var engineTestPorts = dataplane.PortRange{Min: 45000, Max: 45999}

func TestNewEngineModes(t *testing.T) {
	e, err := NewEngine(DataplaneUserspace, EngineConfig{PortRange: engineTestPorts, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name() != "userspace" {
		t.Fatalf("userspace mode built %q", e.Name())
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine("xdp", EngineConfig{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("mode xdp: %v, want ErrBadConfig", err)
	}
}

// TestNewEngineSelection builds engines inside a network namespace with one
// veth, where the eBPF engine can attach, and with an interface that does not
// exist, where it cannot.
func TestNewEngineSelection(t *testing.T) {
	a, b := testenv.NewNetns(t), testenv.NewNetns(t)
	v := testenv.NewVeth(t, a, b, "10.44.0.1/24", "10.44.0.2/24")
	cases := []struct {
		name, mode string
		ifaces     []string
		want       string // engine name; "" means an error
		log        string // a substring of the one selection line
	}{
		{"ebpf", DataplaneEBPF, []string{v.AName}, "ebpf", "engine=ebpf"},
		{"auto picks ebpf", DataplaneAuto, []string{v.AName}, "ebpf", "engine=ebpf"},
		{"empty is auto", "", nil, "ebpf", "mode=auto"},
		{"auto falls back", DataplaneAuto, []string{"nosuch0"}, "userspace", "ebpf_unavailable="},
		{"ebpf unavailable", DataplaneEBPF, []string{"nosuch0"}, "", ""},
		{"userspace", DataplaneUserspace, []string{v.AName}, "userspace", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			var e dataplane.Engine
			var err error
			a.MustDo(t, func() error {
				e, err = NewEngine(tc.mode, EngineConfig{PortRange: engineTestPorts, Interfaces: tc.ifaces, Logger: log})
				return nil
			})
			if tc.want == "" {
				if err == nil {
					e.Close()
					t.Fatal("NewEngine succeeded, want an error")
				}
				if !strings.Contains(err.Error(), "nosuch0") {
					t.Fatalf("error %q does not name the missing interface", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if e.Name() != tc.want {
				t.Fatalf("built %q, want %q", e.Name(), tc.want)
			}
			var sel []string
			for _, l := range strings.Split(buf.String(), "\n") {
				if strings.Contains(l, "data plane selected") {
					sel = append(sel, l)
				}
			}
			if tc.log == "" {
				if len(sel) != 0 {
					t.Fatalf("selection lines %q, want none", sel)
				}
				return
			}
			if len(sel) != 1 || !strings.Contains(sel[0], tc.log) {
				t.Fatalf("selection lines %q, want one with %q", sel, tc.log)
			}
		})
	}
}

func TestKernelVersion(t *testing.T) {
	for _, c := range []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"6.18.44-fc-v669", 6, 18, true},
		{"6.6.0", 6, 6, true},
		{"5.10.0-28-amd64", 5, 10, true},
		{"6.1-rc1", 6, 1, true},
		{"garbage", 0, 0, false},
		{"", 0, 0, false},
	} {
		major, minor, ok := kernelVersion(c.in)
		if ok != c.ok || ok && (major != c.major || minor != c.minor) {
			t.Errorf("kernelVersion(%q) = %d, %d, %v", c.in, major, minor, ok)
		}
	}
}
