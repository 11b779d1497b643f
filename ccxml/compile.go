package ccxml

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// Document is a compiled CCXML document. It is immutable and shared by every
// session that runs it; its programs are compiled once.
type Document struct {
	uri      string
	nodes    []*node
	init     *goja.Program
	statevar string
	trans    []*transition
	// lines maps a generated program's name to, per generated line (0-based),
	// the index of the element that line belongs to, so a runtime error can
	// name its element (tagname) and position.
	lines    map[string][]int32
	initName string
}

// URI is where the document was loaded from (or the name it was compiled under).
func (d *Document) URI() string { return d.uri }

type transition struct {
	node   *node
	states []string
	event  string
	name   string // legacy <transition name="evt">
	cond   *goja.Program
	body   *goja.Program
	bname  string // the body program's name, for elementAt
}

// exprArgs returns, for an element, the expression attributes passed to the
// dispatcher function in order (sorted, so it is stable).
var exprArgs = func() map[string][]string {
	m := make(map[string][]string)
	for tag, spec := range schema {
		var names []string
		for n, a := range spec.attrs {
			if a.kind == attrExpr {
				names = append(names, n)
			}
		}
		sortStrings(names)
		m[tag] = names
	}
	return m
}()

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// argIndex returns the position of an expression attribute among the
// dispatcher's arguments (after the element index), or -1.
func argIndex(tag, attr string) int {
	for i, n := range exprArgs[tag] {
		if n == attr {
			return i + 1
		}
	}
	return -1
}

// gen builds one program's source, one element per line.
type gen struct {
	b     strings.Builder
	lines []int32
}

func (g *gen) emit(idx int, code string) {
	for _, l := range strings.Split(code, "\n") {
		g.b.WriteString(l)
		g.b.WriteByte('\n')
		g.lines = append(g.lines, int32(idx))
	}
}

// oneLine keeps an attribute expression on the line of its element.
func oneLine(expr string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(expr)
}

func namelistObj(list string) string {
	f := strings.Fields(list)
	if len(f) == 0 {
		return "undefined"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(n))
		b.WriteByte(':')
		b.WriteString(n)
	}
	b.WriteByte('}')
	return b.String()
}

// lhsCheck makes assigning to an undeclared variable a semantic error, as
// CCXML 1.0 section 8.2 requires of <assign> (and so of every attribute that
// names a variable to receive a value); session variables are read-only.
func lhsCheck(idx int, name string) string {
	if strings.HasPrefix(name, "session.") || name == "session" {
		return fmt.Sprintf("__u(%d,1);", idx)
	}
	if identRE.MatchString(name) {
		return fmt.Sprintf("try{%s}catch(__e){__u(%d,0)}", name, idx)
	}
	return ""
}

func (d *Document) genBlock(g *gen, kids []*node) {
	for _, n := range kids {
		d.genElem(g, n)
	}
}

func (d *Document) genElem(g *gen, n *node) {
	switch n.tag {
	case "var":
		if e, ok := n.attrs["expr"]; ok {
			g.emit(n.idx, fmt.Sprintf("var %s = (%s);", n.attrs["name"], oneLine(e)))
		} else {
			g.emit(n.idx, fmt.Sprintf("var %s = undefined;", n.attrs["name"]))
		}
	case "assign":
		name := n.attrs["name"]
		g.emit(n.idx, fmt.Sprintf("%s%s = (%s);", lhsCheck(n.idx, name), name, oneLine(n.attrs["expr"])))
	case "script":
		if f, ok := n.attrs["fetchid"]; ok {
			// A script fetched earlier with <fetch type="'text/ecmascript'">.
			g.emit(n.idx, fmt.Sprintf("__x(%d, (%s), undefined);", n.idx, oneLine(f)))
			return
		}
		g.emit(n.idx, n.text)
	case "if":
		g.emit(n.idx, fmt.Sprintf("if (%s) {", oneLine(n.attrs["cond"])))
		for _, k := range n.kids {
			switch k.tag {
			case "elseif":
				g.emit(k.idx, fmt.Sprintf("} else if (%s) {", oneLine(k.attrs["cond"])))
			case "else":
				g.emit(k.idx, "} else {")
			default:
				d.genElem(g, k)
			}
		}
		g.emit(n.idx, "}")
	default:
		var b strings.Builder
		lhs := ""
		for name, a := range schema[n.tag].attrs {
			if a.kind == attrLHS {
				if v, ok := n.attrs[name]; ok {
					lhs = v
				}
			}
		}
		if lhs != "" {
			b.WriteString(lhsCheck(n.idx, lhs))
			b.WriteString(lhs)
			b.WriteString(" = ")
		}
		fmt.Fprintf(&b, "__x(%d", n.idx)
		for _, attr := range exprArgs[n.tag] {
			if v, ok := n.attrs[attr]; ok {
				b.WriteString(", (")
				b.WriteString(oneLine(v))
				b.WriteString(")")
			} else {
				b.WriteString(", undefined")
			}
		}
		b.WriteString(", ")
		b.WriteString(namelistObj(n.attrs["namelist"]))
		b.WriteString(");")
		g.emit(n.idx, b.String())
	}
}

func (d *Document) number(n *node) {
	n.idx = len(d.nodes)
	d.nodes = append(d.nodes, n)
	for _, k := range n.kids {
		d.number(k)
	}
}

// build generates and compiles the programs of a validated document.
func build(uri string, root *node) (*Document, error) {
	d := &Document{uri: uri, statevar: "state$", lines: make(map[string][]int32)}
	d.number(root)
	var diags Diagnostics
	add := func(n *node, format string, args ...any) {
		diags = append(diags, Diagnostic{File: n.file, Line: n.line, Col: n.col, Msg: fmt.Sprintf(format, args...)})
	}
	// The ccxml scope: top-level <var> and <script> run as global code, so
	// their declarations become properties of the global object.
	var g gen
	g.emit(0, "var state$;")
	var ep *node
	for _, k := range root.kids {
		switch k.tag {
		case "var", "script":
			d.genElem(&g, k)
		case "eventprocessor":
			ep = k
		}
	}
	name := uri + "#init"
	prg, err := goja.Compile(name, g.b.String(), false)
	if err != nil {
		add(root, "compile document scripts: %s", firstLine(err))
	}
	d.init, d.lines[name] = prg, g.lines
	d.initName = name
	if ep != nil {
		if sv, ok := ep.attrs["statevariable"]; ok {
			d.statevar = sv
			// CCXML 1.0 section 9.2.1: the state variable must be declared in
			// the ccxml scope, by <var> or by a <script>.
			declared := false
			for _, k := range root.kids {
				if (k.tag == "var" && k.attrs["name"] == sv) || k.tag == "script" {
					declared = true
				}
			}
			if !declared {
				add(ep, "statevariable %q is not declared by a top-level <var> or <script>", sv)
			}
		}
		for i, t := range ep.kids {
			tr := &transition{node: t, event: strings.TrimSpace(t.attrs["event"]), name: t.attrs["name"]}
			tr.states = strings.FieldsFunc(t.attrs["state"], func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })
			params := "event$"
			if tr.name != "" && tr.name != "event$" {
				params += ", " + tr.name
			}
			if c, ok := t.attrs["cond"]; ok {
				cname := fmt.Sprintf("%s#cond%d", uri, i)
				src := fmt.Sprintf("(function(%s){return (%s\n);})", params, c)
				tr.cond, err = goja.Compile(cname, src, false)
				if err != nil {
					add(t, "compile transition cond: %s", firstLine(err))
				}
			}
			var tg gen
			tg.emit(t.idx, fmt.Sprintf("(function(%s){", params))
			d.genBlock(&tg, t.kids)
			tg.emit(t.idx, "})")
			bname := fmt.Sprintf("%s#t%d", uri, i)
			tr.body, err = goja.Compile(bname, tg.b.String(), false)
			if err != nil {
				add(t, "compile transition: %s", firstLine(err))
			}
			d.lines[bname] = tg.lines
			tr.bname = bname
			d.trans = append(d.trans, tr)
		}
	}
	if len(diags) > 0 {
		return nil, diags
	}
	return d, nil
}

// elementAt names the element a runtime exception came from: the innermost
// stack frame of the program that was running (prog), so an exception inside
// a script function called by an element is blamed on that element.
func (d *Document) elementAt(frames []goja.StackFrame, prog string) *node {
	lines := d.lines[prog]
	for _, f := range frames {
		if f.SrcName() != prog {
			continue
		}
		l := f.Position().Line - 1
		if l >= 0 && l < len(lines) {
			return d.nodes[lines[l]]
		}
	}
	return nil
}
