package ccxml_test

import (
	"strings"
	"testing"

	"github.com/recfork/recfork/ccxml"
)

func TestLintBVRRecord(t *testing.T) {
	doc := func(vars, send string) []byte {
		return []byte(`<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
` + vars + `
<eventprocessor><transition event="connection.connected">` + send + `</transition></eventprocessor>
</ccxml>`)
	}
	const four = `<var name="type" expr="'siprec'"/><var name="uri" expr="'sip:srs@10.0.0.9:5060'"/><var name="inbound" expr="'active'"/><var name="outbound" expr="'nochange'"/>`
	send := func(namelist string) string {
		return `<send name="'bvr.record'" target="event$.connectionid" targettype="'connection'" namelist="` + namelist + `"/>`
	}
	cases := []struct {
		name       string
		vars, send string
		want       []string // substrings, one warning each, in order
	}{
		{"clean", four, send("type uri inbound outbound"), nil},
		{"computed values are not judged", `<var name="type" expr="'sip' + 'rec'"/><var name="uri" expr="session.values.srs"/>`, send("type uri"), nil},
		{"undeclared", four, send("type uri inbound outbund"), []string{`names "outbund"`}},
		{"declared in the transition", `<var name="type" expr="'siprec'"/><var name="uri" expr="'sip:a@b'"/>`,
			`<var name="inbound" expr="'none'"/>` + send("type uri inbound"), nil},
		{"declared by a script", `<script>var type = 'siprec', uri = 'sip:a@b';</script>`, send("type uri"), nil},
		{"external script may declare anything", `<script src="data:,"/>`, send("type uri inbound"), nil},
		{"lacks uri", four, send("type inbound outbound"), []string{`lacks "uri"`}},
		{"bad mode literal", `<var name="type" expr="'siprec'"/><var name="uri" expr="'sip:a@b'"/><var name="inbound" expr="'ACTIVE'"/>`,
			send("type uri inbound"), []string{`inbound "ACTIVE" is not one of`}},
		{"bad mode by assign", four, `<assign name="outbound" expr="'mute'"/>` + send("type uri inbound outbound"),
			[]string{`outbound "mute" is not one of`}},
		{"uri not sip", `<var name="type" expr="'siprec'"/><var name="uri" expr="'srs.example.com'"/>`, send("type uri"),
			[]string{`uri "srs.example.com" is not a sip: or sips: URI`}},
		{"uri without host", `<var name="type" expr="'siprec'"/><var name="uri" expr="'sip:'"/>`, send("type uri"),
			[]string{`uri "sip:" is not`}},
		{"sips accepted", `<var name="type" expr="'siprec'"/><var name="uri" expr="'SIPS:srs@[::1]:5061;transport=tls'"/>`, send("type uri"), nil},
		{"bad type", `<var name="type" expr="'mp3'"/><var name="uri" expr="'sip:a@b'"/>`, send("type uri"), []string{`type "mp3"`}},
		{"wrong targettype", four, `<send name="'bvr.record'" target="event$.connectionid" namelist="type uri"/>`,
			[]string{`targettype 'connection'`}},
		{"other sends ignored", ``, `<send name="'user.x'" target="session.id" namelist="nothing"/>`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := doc(c.vars, c.send)
			if c.name == "external script may declare anything" {
				// Lint does not fetch; the document only has to parse.
				src = []byte(strings.Replace(string(src), `<script src="data:,"/>`, `<script src="lib.js"/>`, 1))
			}
			ws := ccxml.Lint("doc.ccxml", src)
			if len(ws) != len(c.want) {
				t.Fatalf("warnings %q, want %d matching %q", ws, len(c.want), c.want)
			}
			for i, w := range ws {
				if !strings.Contains(w.Msg, c.want[i]) || !strings.HasPrefix(w.Msg, "warning: ") || w.Line == 0 {
					t.Errorf("warning %d is %q at line %d, want %q", i, w.Msg, w.Line, c.want[i])
				}
			}
		})
	}
	if ws := ccxml.Lint("bad.ccxml", []byte("<bogus/>")); ws != nil {
		t.Errorf("invalid document: warnings %q, want none (Compile reports it)", ws)
	}
}
