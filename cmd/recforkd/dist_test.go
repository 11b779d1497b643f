package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The shipped config file (dist/systemd/recforkd.conf) documents flags as
// commented "# key = value" lines. Uncommented, every one must be a flag
// recforkd accepts, and those that claim to show a default must show the
// flag's own default, so the file cannot drift from main.go. The README's
// limits table names the same limits.

// confExamples are the commented keys whose value is an example, not the
// default.
var confExamples = map[string]bool{"http": true, "http-token-file": true, "recordings-group": true}

var commentedKey = regexp.MustCompile(`^#\s*([a-z][a-z0-9-]*)\s*=\s*(\S.*)$`)

func TestShippedConfigFile(t *testing.T) {
	b, err := os.ReadFile("../../dist/systemd/recforkd.conf")
	if err != nil {
		t.Fatal(err)
	}
	var enabled []string
	var limits []string
	inLimits := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "# Limits") {
			inLimits = true
			continue
		}
		m := commentedKey.FindStringSubmatch(line)
		if m == nil {
			if !strings.HasPrefix(line, "#") {
				enabled = append(enabled, line)
			}
			continue
		}
		key, value := m[1], m[2]
		enabled = append(enabled, key+" = "+value)
		if inLimits {
			limits = append(limits, key)
		}
		t.Run(key, func(t *testing.T) {
			o := newOptions(io.Discard)
			f := o.fs.Lookup(key)
			if f == nil {
				t.Fatalf("%q is no recforkd flag", key)
			}
			if confExamples[key] {
				return
			}
			if err := f.Value.Set(value); err != nil {
				t.Fatalf("%s = %s: %v", key, value, err)
			}
			if got := f.Value.String(); got != f.DefValue {
				t.Fatalf("%s = %s reads as %q, the flag's default is %q", key, value, got, f.DefValue)
			}
		})
	}
	for _, k := range []string{"recordings-mode", "recordings-group"} {
		if !strings.Contains(string(b), "# "+k+" = ") {
			t.Errorf("the config file does not mention %s", k)
		}
	}

	// With every line enabled the file still loads.
	p := filepath.Join(t.TempDir(), "recforkd.conf")
	if err := os.WriteFile(p, []byte(strings.Join(enabled, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	o := newOptions(io.Discard)
	if err := o.parse([]string{"--config", p}); err != nil {
		t.Fatalf("the config file with every key enabled: %v", err)
	}

	// The README's limits table and the file's limits block name the same flags.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "#### Limits and timeouts")
	if !ok {
		t.Fatal("README has no limits section")
	}
	table, _, _ = strings.Cut(table, "\n\n#")
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| (`--[a-z-]+`.*?) \\|").FindAllStringSubmatch(table, -1) {
		for _, f := range regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(m[1], -1) {
			documented = append(documented, f[1])
		}
	}
	slices.Sort(documented)
	slices.Sort(limits)
	if len(documented) == 0 || !slices.Equal(documented, limits) {
		t.Fatalf("README limits %v, config file limits %v", documented, limits)
	}
}
