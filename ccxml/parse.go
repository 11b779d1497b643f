package ccxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/beevik/etree"
	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Diagnostic is one problem found in a document, with its position (1-based
// line and column, the column counted in characters).
type Diagnostic struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (d Diagnostic) Error() string { return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Msg) }

// Diagnostics is the error Compile and Check return for an invalid document:
// every problem found, in document order.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
	}
	return b.String()
}

// node is a validated CCXML element.
type node struct {
	tag      string
	file     string
	line     int
	col      int
	textLine int // where the character data starts (script)
	textCol  int
	attrs    map[string]string
	kids     []*node
	text     string
	idx      int // index in Document.nodes
}

func (n *node) has(a string) bool { _, ok := n.attrs[a]; return ok }

var (
	identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)
	pathRE  = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)
)

// reserved are ECMAScript reserved words, which cannot name variables.
var reserved = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`break case catch class const continue debugger default delete do else enum
		export extends false finally for function if import in instanceof new null return super switch this
		throw true try typeof var void while with let static yield implements interface package private
		protected public`) {
		m[w] = true
	}
	return m
}()

// lineIndex turns byte offsets into line and column.
type lineIndex struct {
	src    []byte
	starts []int
}

func newLineIndex(src []byte) *lineIndex {
	li := &lineIndex{src: src, starts: []int{0}}
	for i, c := range src {
		if c == '\n' {
			li.starts = append(li.starts, i+1)
		}
	}
	return li
}

func (li *lineIndex) pos(off int64) (int, int) {
	o := int(off)
	if o > len(li.src) {
		o = len(li.src)
	}
	i := sort.Search(len(li.starts), func(i int) bool { return li.starts[i] > o }) - 1
	if i < 0 {
		i = 0
	}
	col := len([]rune(string(li.src[li.starts[i]:o]))) + 1
	return i + 1, col
}

type elemPos struct{ line, col, tline, tcol int }

// scanPositions walks the document with encoding/xml, in parallel with the
// etree parse, and records where each element starts (etree keeps no
// positions). Elements come out in document order, as etree's tree walk visits them.
func scanPositions(file string, src []byte) ([]elemPos, *Diagnostic) {
	li := newLineIndex(src)
	d := xml.NewDecoder(bytes.NewReader(src))
	d.Strict = true
	var out []elemPos
	for {
		start := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			line, col := d.InputPos()
			var se *xml.SyntaxError
			msg := err.Error()
			if errors.As(err, &se) {
				msg = "xml: " + se.Msg
				line = se.Line
			}
			return nil, &Diagnostic{File: file, Line: max(line, 1), Col: max(col, 1), Msg: msg}
		}
		if _, ok := tok.(xml.StartElement); ok {
			l, c := li.pos(start)
			tl, tc := li.pos(d.InputOffset())
			out = append(out, elemPos{l, c, tl, tc})
		}
	}
}

// parseDoc parses and validates a document, returning its root element and
// every problem found.
func parseDoc(file string, src []byte) (*node, Diagnostics) {
	positions, derr := scanPositions(file, src)
	if derr != nil {
		return nil, Diagnostics{*derr}
	}
	// encoding/xml (RawToken) does not check nesting; let the full parse do it.
	x := etree.NewDocument()
	if err := x.ReadFromBytes(src); err != nil {
		var se *xml.SyntaxError
		line := 1
		msg := err.Error()
		if errors.As(err, &se) {
			line, msg = se.Line, "xml: "+se.Msg
		}
		return nil, Diagnostics{{File: file, Line: max(line, 1), Col: 1, Msg: msg}}
	}
	root := x.Root()
	if root == nil {
		return nil, Diagnostics{{File: file, Line: 1, Col: 1, Msg: "no root element"}}
	}
	p := &docParser{file: file, positions: positions}
	// Map every element (foreign ones too) to its position, in document order.
	p.byElem = make(map[*etree.Element]elemPos, len(positions))
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		if p.next < len(positions) {
			p.byElem[e] = positions[p.next]
		}
		p.next++
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	if !isCCXML(root) || root.Tag != "ccxml" {
		pos := p.byElem[root]
		return nil, Diagnostics{{File: file, Line: pos.line, Col: pos.col, Msg: fmt.Sprintf("root element is <%s>, want <ccxml> in namespace %s", root.Tag, Namespace)}}
	}
	n := p.element(root, "")
	return n, p.diags
}

func isCCXML(e *etree.Element) bool {
	ns := e.NamespaceURI()
	return ns == "" || ns == Namespace
}

type docParser struct {
	file      string
	positions []elemPos
	byElem    map[*etree.Element]elemPos
	next      int
	diags     Diagnostics
}

func (p *docParser) errf(line, col int, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

func (p *docParser) element(e *etree.Element, parent string) *node {
	pos := p.byElem[e]
	n := &node{tag: e.Tag, file: p.file, line: pos.line, col: pos.col, textLine: pos.tline, textCol: pos.tcol,
		attrs: make(map[string]string, len(e.Attr))}
	spec, ok := schema[e.Tag]
	if !ok {
		p.errf(pos.line, pos.col, "unknown element <%s> in the CCXML namespace", e.Tag)
		return nil
	}
	if spec.anyContent {
		return n
	}
	for _, at := range e.Attr {
		switch {
		case at.Space == "xmlns" || (at.Space == "" && at.Key == "xmlns"):
			continue
		case at.Space == "xml" && at.Key == "base" && e.Tag == "ccxml":
			n.attrs["base"] = at.Value
			continue
		case at.Space != "":
			continue // foreign attribute: ignored
		}
		as, ok := spec.attrs[at.Key]
		if !ok {
			p.errf(pos.line, pos.col, "attribute %q is not allowed on <%s>", at.Key, e.Tag)
			continue
		}
		v := at.Value
		n.attrs[at.Key] = v
		p.checkAttr(n, at.Key, as, v)
	}
	for name, as := range spec.attrs {
		if as.required && !n.has(name) {
			p.errf(pos.line, pos.col, "<%s> requires attribute %q", e.Tag, name)
		}
	}
	for _, tok := range e.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if !isCCXML(t) {
				continue
			}
			if spec.children == nil || !spec.children[t.Tag] {
				cp := p.byElem[t]
				if _, known := schema[t.Tag]; !known {
					p.errf(cp.line, cp.col, "unknown element <%s> in the CCXML namespace", t.Tag)
				} else {
					p.errf(cp.line, cp.col, "<%s> is not allowed inside <%s>", t.Tag, e.Tag)
				}
				continue
			}
			if k := p.element(t, e.Tag); k != nil {
				n.kids = append(n.kids, k)
			}
		case *etree.CharData:
			if spec.text {
				n.text += t.Data
			} else if strings.TrimSpace(t.Data) != "" {
				p.errf(pos.line, pos.col, "<%s> cannot contain text", e.Tag)
			}
		}
	}
	p.checkElement(n, parent)
	return n
}

func (p *docParser) checkAttr(n *node, name string, as attrSpec, v string) {
	switch as.kind {
	case attrExpr:
		if strings.TrimSpace(v) == "" {
			p.errf(n.line, n.col, "attribute %q of <%s> is an empty expression", name, n.tag)
			return
		}
		if _, err := goja.Parse("", "("+v+"\n)"); err != nil {
			p.errf(n.line, n.col, "attribute %q of <%s>: bad ECMAScript expression %q: %s", name, n.tag, v, firstLine(err))
		}
	case attrLHS:
		if !pathRE.MatchString(v) {
			p.errf(n.line, n.col, "attribute %q of <%s> must name a variable, got %q", name, n.tag, v)
		}
	case attrList:
		if name == "namelist" {
			for _, f := range strings.Fields(v) {
				if !pathRE.MatchString(f) {
					p.errf(n.line, n.col, "namelist of <%s>: %q is not a variable name", n.tag, f)
				}
			}
		}
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (p *docParser) checkElement(n *node, parent string) {
	switch n.tag {
	case "ccxml":
		if v, ok := n.attrs["version"]; ok && v != "1.0" {
			p.errf(n.line, n.col, "unsupported CCXML version %q, want \"1.0\"", v)
		}
		eps := 0
		for _, k := range n.kids {
			if k.tag == "eventprocessor" {
				eps++
				if eps > 1 {
					p.errf(k.line, k.col, "a document has at most one <eventprocessor>")
				}
			}
		}
	case "meta":
		if n.has("name") == n.has("http-equiv") {
			p.errf(n.line, n.col, "<meta> takes exactly one of name and http-equiv")
		}
	case "var":
		if v := n.attrs["name"]; v != "" && (!identRE.MatchString(v) || reserved[v]) {
			p.errf(n.line, n.col, "<var> name %q is not an ECMAScript identifier", v)
		}
	case "assign":
		if v := n.attrs["name"]; v != "" && !pathRE.MatchString(v) {
			p.errf(n.line, n.col, "<assign> name %q is not a variable name", v)
		}
	case "eventprocessor":
		if v, ok := n.attrs["statevariable"]; ok && !identRE.MatchString(v) {
			p.errf(n.line, n.col, "statevariable %q is not an ECMAScript identifier", v)
		}
	case "transition":
		if v, ok := n.attrs["name"]; ok && !identRE.MatchString(v) {
			p.errf(n.line, n.col, "<transition> name %q is not an ECMAScript identifier", v)
		}
	case "script":
		src, hasSrc := n.attrs["src"]
		if hasSrc && strings.TrimSpace(n.text) != "" {
			p.errf(n.line, n.col, "<script> has both src and inline content")
		}
		if n.has("fetchid") && (hasSrc || strings.TrimSpace(n.text) != "") {
			p.errf(n.line, n.col, "<script> with fetchid takes neither src nor inline content")
		}
		if hasSrc && strings.TrimSpace(src) == "" {
			p.errf(n.line, n.col, "<script> src is empty")
		}
		if t, ok := n.attrs["timeout"]; ok {
			if _, err := ParseTime(t); err != nil {
				p.errf(n.line, n.col, "<script> timeout: %v", err)
			}
		}
		if !hasSrc && !n.has("fetchid") {
			if _, err := parser.ParseFile(nil, "", n.text, 0); err != nil {
				line, col := n.textLine, n.textCol
				var el parser.ErrorList
				var pe *parser.Error
				if errors.As(err, &el) && len(el) > 0 {
					pe = el[0]
				} else {
					errors.As(err, &pe)
				}
				msg := err.Error()
				if pe != nil {
					msg = pe.Message
					if pe.Position.Line > 1 {
						line += pe.Position.Line - 1
						col = pe.Position.Column
					} else {
						col += pe.Position.Column - 1
					}
				}
				p.errf(line, col, "<script>: %s", msg)
			}
		}
	case "if":
		seenElse := false
		for _, k := range n.kids {
			switch k.tag {
			case "elseif":
				if seenElse {
					p.errf(k.line, k.col, "<elseif> after <else>")
				}
			case "else":
				if seenElse {
					p.errf(k.line, k.col, "second <else> in one <if>")
				}
				seenElse = true
			}
		}
	case "dialogstart":
		if !n.has("src") && !n.has("prepareddialogid") {
			p.errf(n.line, n.col, "<dialogstart> needs src or prepareddialogid")
		}
		if n.has("src") && n.has("prepareddialogid") {
			p.errf(n.line, n.col, "<dialogstart> takes src or prepareddialogid, not both")
		}
	case "move":
		if n.has("source") == n.has("event") {
			p.errf(n.line, n.col, "<move> takes exactly one of source and event")
		}
	case "send":
		if n.has("name") && n.has("data") {
			p.errf(n.line, n.col, "<send> takes name (or the legacy data), not both")
		}
	}
	_ = parent
}

// scriptSyntax checks an external script's syntax, positioned in that script.
func scriptSyntax(file, src string) *Diagnostic {
	_, err := parser.ParseFile(nil, file, src, 0)
	if err == nil {
		return nil
	}
	d := &Diagnostic{File: file, Line: 1, Col: 1, Msg: firstLine(err)}
	var el parser.ErrorList
	if errors.As(err, &el) && len(el) > 0 {
		d.Line, d.Col, d.Msg = max(el[0].Position.Line, 1), max(el[0].Position.Column, 1), el[0].Message
	}
	return d
}
