package ccxml

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func compileString(t testing.TB, src string) (*Document, error) {
	t.Helper()
	in, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return in.Compile(context.Background(), "t.ccxml", []byte(src))
}

func TestValidationPositions(t *testing.T) {
	head := `<?xml version="1.0"?>` + "\n" + `<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">` + "\n"
	cases := []struct {
		name, body string
		want       string // "line:col: message fragment"
	}{
		{"unknown element", "  <frob/>\n", "3:3: unknown element <frob>"},
		{"missing required", "<eventprocessor>\n <transition>\n  <log/>\n </transition>\n</eventprocessor>\n", `5:3: <log> requires attribute "expr"`},
		{"unknown attribute", "<var name=\"a\" bogus=\"1\"/>\n", `3:1: attribute "bogus" is not allowed on <var>`},
		{"child not allowed", "<eventprocessor><log expr=\"1\"/></eventprocessor>\n", "3:17: <log> is not allowed inside <eventprocessor>"},
		{"bad expression", "<var name=\"a\" expr=\"1 +\"/>\n", `3:1: attribute "expr" of <var>: bad ECMAScript expression`},
		{"bad lhs", "<eventprocessor><transition><send target=\"1\" name=\"'x'\" sendid=\"a b\"/></transition></eventprocessor>\n", `3:29: attribute "sendid" of <send> must name a variable`},
		{"bad namelist", "<eventprocessor><transition><exit namelist=\"a 1b\"/></transition></eventprocessor>\n", `3:29: namelist of <exit>: "1b"`},
		{"reserved var", "<var name=\"in\"/>\n", `3:1: <var> name "in"`},
		{"script syntax", "<script>\nvar a = ;\n</script>\n", "4:9: <script>"},
		{"script both", "<script src=\"x.js\">var a;</script>\n", "3:1: <script> has both src"},
		{"else twice", "<eventprocessor><transition><if cond=\"1\"><else/><else/></if></transition></eventprocessor>\n", "3:49: second <else>"},
		{"two eventprocessors", "<eventprocessor/>\n<eventprocessor/>\n", "4:1: a document has at most one <eventprocessor>"},
		{"text in transition", "<eventprocessor><transition>hello</transition></eventprocessor>\n", "3:17: <transition> cannot contain text"},
		{"statevariable undeclared", "<eventprocessor statevariable=\"st\"/>\n", `3:1: statevariable "st" is not declared`},
		{"meta needs name", "<meta content=\"x\"/>\n", "3:1: <meta> takes exactly one of name and http-equiv"},
		{"dialogstart needs src", "<eventprocessor><transition><dialogstart/></transition></eventprocessor>\n", "3:29: <dialogstart> needs src"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compileString(t, head+c.body+"</ccxml>\n")
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("got %v, want diagnostics", err)
			}
			if !strings.Contains(ds.Error(), "t.ccxml:"+c.want) {
				t.Fatalf("diagnostics\n%s\nlack %q", ds.Error(), c.want)
			}
		})
	}
}

func TestDocumentLevelErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"not xml", "<ccxml", "t.ccxml:1:"},
		{"wrong root", `<vxml version="2.0"/>`, "root element is <vxml>"},
		{"wrong version", `<ccxml version="2.0"/>`, `unsupported CCXML version "2.0"`},
		{"mismatched tags", `<ccxml version="1.0"><var name="a"></ccxml>`, "t.ccxml:1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compileString(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestValidDocumentsCompile(t *testing.T) {
	cases := []string{
		// No namespace, legacy transition name, legacy send data.
		`<ccxml version="1.0"><eventprocessor><transition event="x" name="evt"><send data="'a'" target="session.id"/></transition></eventprocessor></ccxml>`,
		// Foreign elements and attributes are ignored.
		`<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml" xmlns:v="urn:v"><v:thing a="b"><v:x/></v:thing><eventprocessor v:y="1"/></ccxml>`,
	}
	for i, src := range cases {
		if _, err := compileString(t, src); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestMatchEvent(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"", "anything", true},
		{"*", "", true},
		{"*", "connection.alerting", true},
		{"connection.*", "connection.alerting", true},
		{"connection.*", "connection.", true},
		{"connection.*", "connection", false},
		{"error.*", "error.send.failed", true},
		{"error", "error.semantic", false},
		{"Connection.ALERTING", "connection.alerting", true},
		{"user.*.two", "user.one.two", true},
		{"user.*.two", "user.one.three", false},
		{"*.failed", "connection.accept.failed", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"exact", "exactly", false},
	}
	for _, c := range cases {
		t.Run(c.pattern+"_"+c.name, func(t *testing.T) {
			if got := MatchEvent(c.pattern, c.name); got != c.want {
				t.Fatalf("MatchEvent(%q, %q) = %v", c.pattern, c.name, got)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"5s", 5 * time.Second, true},
		{"200ms", 200 * time.Millisecond, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{" 10MS ", 10 * time.Millisecond, true},
		{"0s", 0, true},
		{"5", 0, false},
		{"-1s", 0, false},
		{"s", 0, false},
		{"1e3ms", 0, false},
		{"1..2s", 0, false},
		{"99999999999999999999s", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseTime(c.in)
			if (err == nil) != c.ok || (c.ok && got != c.want) {
				t.Fatalf("ParseTime(%q) = %v, %v", c.in, got, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`<ccxml version="1.0"><var name="a" expr="1"/><eventprocessor><transition event="*"><log expr="a"/></transition></eventprocessor></ccxml>`)
	f.Add(`<ccxml version="1.0"><script>function f(){}</script></ccxml>`)
	f.Add(`<ccxml version="1.0"><eventprocessor><transition><if cond="1"><elseif cond="2"/><else/></if></transition></eventprocessor></ccxml>`)
	f.Add(`<?xml version="1.0"?><ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml" xmlns:x="urn:x"><x:y/></ccxml>`)
	f.Add(`<ccxml`)
	f.Add(`<ccxml version="1.0"><var name="uri" expr="'sip:'"/><var name="inbound" expr="'x'"/><eventprocessor><transition><send name="'bvr.record'" target="a" namelist="uri inbound other"/></transition></eventprocessor></ccxml>`)
	in, _ := New(Config{})
	f.Fuzz(func(t *testing.T, src string) {
		d, err := in.Compile(context.Background(), "f.ccxml", []byte(src))
		if err == nil && d == nil {
			t.Fatal("nil document without error")
		}
		var ds Diagnostics
		if errors.As(err, &ds) {
			for _, x := range ds {
				if x.Line < 1 || x.Col < 1 {
					t.Fatalf("bad position %+v", x)
				}
			}
		}
		// Lint parses the same text and must never fail worse.
		for _, w := range Lint("f.ccxml", []byte(src)) {
			if w.Line < 1 || w.Col < 1 || !strings.HasPrefix(w.Msg, "warning: ") {
				t.Fatalf("bad warning %+v", w)
			}
		}
	})
}

func FuzzMatchEvent(f *testing.F) {
	f.Add("connection.*", "connection.alerting")
	f.Add("*a*b*", "xxaxxbxx")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := MatchEvent(pattern, name)
		if pattern == name && !got {
			t.Fatalf("%q does not match itself", pattern)
		}
		if !strings.Contains(pattern, "*") && pattern != "" && got != strings.EqualFold(pattern, name) && isASCII(pattern+name) {
			t.Fatalf("literal %q vs %q: %v", pattern, name, got)
		}
		if !MatchEvent("*", name) {
			t.Fatalf("* does not match %q", name)
		}
		if got && !MatchEvent(pattern+"*", name+".x") {
			t.Fatalf("%q matches %q but %q* does not match %q.x", pattern, name, pattern, name)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"5s", "200ms", "1.5s", "-1s", "", "1e9s", "0.0001ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTime(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseTime(%q) = %v, negative", s, d)
		}
	})
}

func TestExternalScriptSyntaxError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/bad.js", []byte("var ok = 1;\nvar = 2;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := New(Config{})
	_, err := in.Compile(context.Background(), dir+"/doc.ccxml", []byte(`<ccxml version="1.0"><script src="bad.js"/></ccxml>`))
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 || ds[0].File != dir+"/bad.js" || ds[0].Line != 2 {
		t.Fatalf("got %v, want one diagnostic at bad.js line 2", err)
	}
}
