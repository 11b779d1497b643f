package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeDoc(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "doc.ccxml")
	src := `<?xml version="1.0"?>` + "\n" + `<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">` + "\n" + body + "</ccxml>\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCCXMLCommand(t *testing.T) {
	good := writeDoc(t, `<eventprocessor>
<transition event="connection.alerting"><log label="'from'" expr="event$.connection.remote"/><accept/></transition>
<transition event="connection.connected"><log expr="'up'"/><disconnect/></transition>
</eventprocessor>
`)
	exits := writeDoc(t, `<eventprocessor><transition event="ccxml.loaded"><log expr="'bye'"/><exit/></transition></eventprocessor>
`)
	failing := writeDoc(t, `<eventprocessor><transition event="ccxml.loaded"><assign name="nosuch" expr="1"/></transition></eventprocessor>
`)
	keys := writeDoc(t, `<var name="got" expr="''"/><eventprocessor>
<transition event="connection.alerting"><accept/></transition>
<transition event="connection.signal"><assign name="got" expr="got + event$.dtmf"/><if cond="got.length == 3"><log label="'keys'" expr="got"/><exit/></if></transition>
</eventprocessor>
`)
	forever := writeDoc(t, `<eventprocessor/>
`)
	invalid := writeDoc(t, `<bogus/>
`)
	badRecord := writeDoc(t, `<var name="type" expr="'siprec'"/><var name="uri" expr="'tel:+15551234'"/>
<var name="inbound" expr="'on'"/>
<eventprocessor>
<transition event="connection.connected"><send name="'bvr.record'" target="event$.connectionid" targettype="'connection'" namelist="type uri inbound outbound"/></transition>
</eventprocessor>
`)
	// The error raised in ccxml.loaded is handled before the call's
	// connection.alerting, which was queued first (CCXML 1.0 section 9.5.2).
	traced := writeDoc(t, `<eventprocessor>
<transition event="ccxml.loaded"><assign name="nosuch" expr="1"/></transition>
<transition event="error.semantic"><log expr="'error'"/></transition>
<transition event="connection.alerting"><exit/></transition>
</eventprocessor>
`)
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"check good", []string{"check", good, exits}, 0, ""},
		{"check invalid", []string{"check", invalid}, 1, invalid + ":3:1: unknown element <bogus>"},
		{"run call", []string{"run", good, "--call", "sip:alice@127.0.0.1", "sip:rec@127.0.0.1"}, 0, "from: sip:alice@127.0.0.1\nup\n"},
		{"run dtmf", []string{"run", keys, "--call", "sip:a@127.0.0.1", "sip:b@127.0.0.1", "--dtmf", "12#"}, 0, "keys: 12#\n"},
		{"run bad dtmf", []string{"run", keys, "--dtmf", "xyz"}, 2, ""},
		{"run exit", []string{"run", exits}, 0, "bye\n"},
		{"run unhandled error", []string{"run", failing}, 1, ""},
		{"run timeout", []string{"run", forever, "--timeout", "50ms"}, 2, ""},
		{"run invalid", []string{"run", invalid}, 1, ""},
		{"check warns bvr.record undeclared", []string{"check", badRecord}, 0,
			badRecord + `:6:42: warning: bvr.record namelist names "outbound", which the document does not declare`},
		{"check warns bvr.record uri", []string{"check", badRecord}, 0,
			badRecord + `:3:35: warning: bvr.record uri "tel:+15551234" is not a sip: or sips: URI`},
		{"check warns bvr.record mode", []string{"check", badRecord}, 0,
			badRecord + `:4:1: warning: bvr.record inbound "on" is not one of active, inactive, none, nochange`},
		{"check good has no warnings", []string{"check", keys}, 0, ""},
		{"run trace", []string{"run", traced, "--trace", "--call", "sip:a@127.0.0.1", "sip:b@127.0.0.1"}, 0,
			"trace: ccxml.loaded -> " + traced + ":4:1\ntrace: error.semantic -> " + traced + ":5:1\nerror\ntrace: connection.alerting -> " + traced + ":6:1\n"},
		{"usage", []string{}, 2, ""},
		{"bad subcommand", []string{"frob"}, 2, ""},
		{"run missing call args", []string{"run", good, "--call", "sip:a@127.0.0.1"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"ccxml"}, c.args...), &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, c.code, out.String(), errb.String())
			}
			if c.out != "" && !strings.Contains(out.String(), c.out) {
				t.Fatalf("stdout %q lacks %q", out.String(), c.out)
			}
			if c.out == "" && len(c.args) > 0 && c.args[0] == "check" && out.Len() > 0 {
				t.Fatalf("stdout %q, want nothing", out.String())
			}
		})
	}
}
