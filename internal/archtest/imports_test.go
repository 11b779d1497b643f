package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/recfork/recfork"

// rules maps a package (and, with a trailing "/...", its sub-packages) to the
// non-standard-library import prefixes its production code may use. The most
// specific entry wins. Standard library imports are always allowed.
var rules = map[string][]string{
	"dataplane":           {},
	"dataplane/ebpf":      {"dataplane", "github.com/cilium/ebpf", "golang.org/x/sys"},
	"dataplane/userspace": {"dataplane", "golang.org/x/net", "golang.org/x/sys", "github.com/pion/rtp"},
	// SRTP toward the SRS: the cipher is pion's, the package is a
	// userspace relay beside the engines (the kernel cannot encrypt).
	"dataplane/srtp": {"dataplane", "github.com/pion/srtp/v3"},
	"dataplane/...":  {"dataplane"},
	// The SRC offers and the SRS answers a=crypto keys, so both use the
	// SDES key types and relay of dataplane/srtp; never an engine.
	"siprec":     {"dataplane", "dataplane/srtp", "github.com/emiago/sipgo", "github.com/pion/sdp/v3", "github.com/beevik/etree"},
	"siprec/srs": {"dataplane/srtp", "github.com/emiago/sipgo", "github.com/pion/rtp", "github.com/pion/sdp/v3", "golang.org/x/sys"},
	"siprec/...": {"siprec", "dataplane", "github.com/emiago/sipgo", "github.com/pion/sdp/v3", "github.com/beevik/etree", "github.com/pion/rtp"},
	"ccxml/...":  {"ccxml", "github.com/beevik/etree", "github.com/dop251/goja"},
	"ccxml":      {"github.com/beevik/etree", "github.com/dop251/goja"},
	// The shared recording state knows SIPREC snapshots and Redis only:
	// never the SIP core, CCXML or the data plane.
	"controlplane/state": {"siprec", "github.com/redis/go-redis/v9"},
	"controlplane/...":   {"controlplane/...", "dataplane/...", "siprec/...", "ccxml/...", "github.com/", "golang.org/x/"},
	"cmd/...":            {"controlplane/...", "dataplane/...", "siprec/...", "ccxml/...", "github.com/", "golang.org/x/"},
	"perf/...":           {""},
	"internal/testenv":   {"golang.org/x/sys"},
	"internal/testcert":  {},
	"internal/archtest":  {},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// allowedFor returns the rule of the most specific entry matching rel.
func allowedFor(rel string) ([]string, bool) {
	if a, ok := rules[rel]; ok {
		return a, true
	}
	best, found := "", false
	var allowed []string
	for k, v := range rules {
		base, ok := strings.CutSuffix(k, "/...")
		if !ok {
			continue
		}
		if (rel == base || strings.HasPrefix(rel, base+"/")) && len(base) >= len(best) {
			best, allowed, found = base, v, true
		}
	}
	return allowed, found
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func permitted(imp string, allowed []string) bool {
	internal := strings.HasPrefix(imp, module+"/")
	for _, a := range allowed {
		if a == "" {
			return true // anything
		}
		if strings.HasSuffix(a, "/") {
			if !internal && strings.HasPrefix(imp, a) {
				return true
			}
			continue
		}
		if !strings.Contains(strings.SplitN(a, "/", 2)[0], ".") {
			// A package of this module: exactly it, or its sub-packages with "/...".
			if base, ok := strings.CutSuffix(a, "/..."); ok {
				if imp == module+"/"+base || strings.HasPrefix(imp, module+"/"+base+"/") {
					return true
				}
			} else if imp == module+"/"+a {
				return true
			}
			continue
		}
		// An external module and its packages.
		if internal {
			continue
		}
		if imp == a || strings.HasPrefix(imp, a+"/") {
			return true
		}
	}
	return false
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allowed, ok := allowedFor(rel)
		if !ok {
			t.Errorf("%s: no import rule; add it to ARCHITECTURE.md's table and to rules", rel)
			continue
		}
		for _, imp := range p.Imports {
			if isStd(imp) {
				continue
			}
			inPerf := rel == "perf" || strings.HasPrefix(rel, "perf/")
			if strings.HasPrefix(imp, module+"/internal/testenv") || strings.HasPrefix(imp, module+"/internal/testcert") || (!inPerf && strings.HasPrefix(imp, module+"/perf")) {
				t.Errorf("%s imports %s: production code must not import test or perf packages", rel, imp)
				continue
			}
			if !permitted(imp, allowed) {
				t.Errorf("%s imports %s, which its layer may not (allowed: %q)", rel, imp, allowed)
			}
		}
	}
}

// TestRulesCatchViolations proves the checker is not vacuous.
func TestRulesCatchViolations(t *testing.T) {
	cases := []struct {
		pkg, imp string
		want     bool
	}{
		{"ccxml", "github.com/emiago/sipgo", false},
		{"ccxml", module + "/siprec", false},
		{"ccxml", "github.com/dop251/goja", true},
		{"siprec", module + "/ccxml", false},
		{"siprec", module + "/dataplane", true},
		{"siprec", module + "/dataplane/ebpf", false},
		{"siprec", module + "/dataplane/srtp", true},
		{"siprec/srs", module + "/dataplane/userspace", false},
		{"dataplane/srtp", "github.com/pion/srtp/v3", true},
		{"dataplane/userspace", "github.com/pion/srtp/v3", false},
		{"dataplane/userspace", "github.com/cilium/ebpf", false},
		{"dataplane/ebpf", "github.com/cilium/ebpf/link", true},
		{"dataplane", "golang.org/x/sys/unix", false},
		{"controlplane", module + "/siprec", true},
		{"controlplane", module + "/dataplane/ebpf", true},
		{"cmd/recforkd", module + "/perf", false},
		{"perf/x", "anything.example/y", true},
	}
	for _, c := range cases {
		allowed, ok := allowedFor(c.pkg)
		if !ok {
			t.Fatalf("no rule for %s", c.pkg)
		}
		if got := permitted(c.imp, allowed); got != c.want {
			t.Errorf("%s importing %s: permitted=%v, want %v", c.pkg, c.imp, got, c.want)
		}
	}
}
