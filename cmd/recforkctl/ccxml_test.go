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
		})
	}
}
