package ccxml

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Lint reports likely mistakes in a document that is otherwise valid: things
// the Recommendation allows but that cannot work as the author meant. It
// returns nil for a document that does not parse (Compile reports why).
// Every message starts with "warning: ".
//
// Today it checks <send name="'bvr.record'"> (notes/BVR-RECORD.md): the
// namelist names variables the document declares and includes type and uri;
// the targettype is 'connection'; and every literal value the document gives
// the variables it sends is one bvr.record accepts (type 'siprec', a sip: or
// sips: uri, inbound and outbound one of active, inactive, none, nochange).
// Values computed at run time are not checked.
func Lint(name string, src []byte) Diagnostics {
	root, diags := parseDoc(name, src)
	if len(diags) > 0 || root == nil {
		return nil
	}
	l := linter{declared: map[string]bool{}, literals: map[string][]*node{}}
	l.collect(root)
	var out Diagnostics
	warn := func(n *node, format string, a ...any) {
		out = append(out, Diagnostic{File: n.file, Line: n.line, Col: n.col, Msg: "warning: " + fmt.Sprintf(format, a...)})
	}
	checked := map[*node]bool{}
	for _, send := range l.sends {
		lit, ok := literal(send.attrs["name"])
		if !ok || lit != "bvr.record" {
			continue
		}
		if tt, ok := literal(send.attrs["targettype"]); !send.has("targettype") || (ok && tt != "connection") {
			warn(send, "bvr.record is served by targettype 'connection', not %s", orDefault(send.attrs["targettype"], "the default 'ccxml'"))
		}
		names := strings.Fields(send.attrs["namelist"])
		sent := map[string]bool{}
		for _, v := range names {
			sent[v] = true
			if !strings.Contains(v, ".") && !l.declared[v] && !l.opaque {
				warn(send, "bvr.record namelist names %q, which the document does not declare (<var name=%q>)", v, v)
			}
		}
		for _, req := range []string{"type", "uri"} {
			if !sent[req] {
				warn(send, "bvr.record namelist lacks %q, which is required", req)
			}
		}
		for _, field := range []string{"type", "uri", "inbound", "outbound"} {
			if !sent[field] {
				continue
			}
			for _, n := range l.literals[field] {
				if checked[n] {
					continue
				}
				checked[n] = true
				v, _ := literal(n.attrs["expr"])
				if msg := badRecordValue(field, v); msg != "" {
					warn(n, "bvr.record %s", msg)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return out
}

type linter struct {
	declared map[string]bool
	literals map[string][]*node // <var>/<assign> elements giving a variable a string literal
	sends    []*node
	opaque   bool // an external script may declare names
}

// scriptDecl and scriptAssign find the names a script declares or assigns
// (a sloppy-mode assignment creates a global): generous on purpose, as a
// warning must not cry wolf.
var (
	scriptDecl   = regexp.MustCompile(`\b(?:var|let|const|function)\s+([A-Za-z_$][\w$]*)`)
	scriptAssign = regexp.MustCompile(`(?:^|[^\w$.])([A-Za-z_$][\w$]*)\s*=(?:[^=]|$)`)
)

func (l *linter) collect(n *node) {
	switch n.tag {
	case "var", "assign":
		if n.tag == "var" {
			l.declared[n.attrs["name"]] = true
		}
		if _, ok := literal(n.attrs["expr"]); ok {
			l.literals[n.attrs["name"]] = append(l.literals[n.attrs["name"]], n)
		}
	case "script":
		for _, re := range []*regexp.Regexp{scriptDecl, scriptAssign} {
			for _, m := range re.FindAllStringSubmatch(n.text, -1) {
				l.declared[m[1]] = true
			}
		}
		if n.has("src") || n.has("fetchid") {
			// A script recfork cannot see here may declare any name.
			l.opaque = true
		}
	case "send":
		l.sends = append(l.sends, n)
	}
	for _, k := range n.kids {
		l.collect(k)
	}
}

// literal returns the string an expression is when it is only a quoted
// ECMAScript string without escapes.
func literal(expr string) (string, bool) {
	e := strings.TrimSpace(expr)
	if len(e) < 2 {
		return "", false
	}
	q := e[0]
	if (q != '\'' && q != '"') || e[len(e)-1] != q {
		return "", false
	}
	body := e[1 : len(e)-1]
	if strings.IndexByte(body, q) >= 0 || strings.IndexByte(body, '\\') >= 0 {
		return "", false
	}
	return body, true
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// badRecordValue says what is wrong with a literal bvr.record field value,
// or "" when nothing is.
func badRecordValue(field, v string) string {
	switch field {
	case "type":
		if v != "siprec" {
			return fmt.Sprintf("type %q: only 'siprec' is served (error.bvr.record bad-type)", v)
		}
	case "uri":
		if !isSIPURI(v) {
			return fmt.Sprintf("uri %q is not a sip: or sips: URI (error.bvr.record bad-uri)", v)
		}
	case "inbound", "outbound":
		switch v {
		case "active", "inactive", "none", "nochange":
		default:
			return fmt.Sprintf("%s %q is not one of active, inactive, none, nochange (error.bvr.record bad-mode)", field, v)
		}
	}
	return ""
}

// isSIPURI reports whether v looks like a sip: or sips: URI with a host
// (RFC 3261 section 19.1.1): the scheme, an optional user part, a host.
func isSIPURI(v string) bool {
	scheme, rest, ok := strings.Cut(v, ":")
	if !ok || !(strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")) {
		return false
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexAny(rest, ":;?"); i >= 0 {
		rest = rest[:i]
	}
	return rest != "" && !strings.ContainsAny(rest, " \t<>\"")
}
