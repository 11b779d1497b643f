package ccxml

// attrKind says how an attribute's value is used.
type attrKind uint8

const (
	attrExpr attrKind = iota // an ECMAScript expression
	attrLit                  // a literal string
	attrLHS                  // a variable name that receives a value
	attrList                 // a space-separated literal list (namelist, state)
)

type attrSpec struct {
	kind     attrKind
	required bool
}

type elemSpec struct {
	attrs map[string]attrSpec
	// children lists the CCXML elements allowed inside; nil means none.
	children map[string]bool
	// text allows character data (script, metadata).
	text bool
	// anyContent skips validation of what is inside (metadata).
	anyContent bool
}

// Namespace is the CCXML 1.0 namespace. Elements without a namespace are
// taken as CCXML too (many deployed documents omit xmlns); elements of any
// other namespace are ignored, as the Recommendation's extensibility rules ask.
const Namespace = "http://www.w3.org/2002/09/ccxml"

var executable = map[string]bool{
	"dialogstart": true, "dialogterminate": true, "dialogprepare": true,
	"var": true, "assign": true, "script": true,
	"cancel": true, "move": true, "send": true,
	"fetch": true, "goto": true, "if": true,
	"accept": true, "createconference": true, "destroyconference": true, "disconnect": true,
	"join": true, "merge": true, "redirect": true, "reject": true, "unjoin": true, "createcall": true,
	"createccxml": true, "log": true, "exit": true,
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func a(kind attrKind) attrSpec   { return attrSpec{kind: kind} }
func req(kind attrKind) attrSpec { return attrSpec{kind: kind, required: true} }
func withExec(extra ...string) map[string]bool {
	m := make(map[string]bool, len(executable)+len(extra))
	for k := range executable {
		m[k] = true
	}
	for _, e := range extra {
		m[e] = true
	}
	return m
}

// schema is the CCXML 1.0 Recommendation's element table (and its DTD):
// attributes with their kind and whether they are required, and allowed
// children.
var schema = map[string]elemSpec{
	"ccxml": {attrs: map[string]attrSpec{"version": req(attrLit), "base": a(attrLit)},
		children: set("meta", "metadata", "var", "script", "eventprocessor")},
	"meta":     {attrs: map[string]attrSpec{"name": a(attrLit), "http-equiv": a(attrLit), "content": req(attrLit)}},
	"metadata": {anyContent: true, text: true},
	"var":      {attrs: map[string]attrSpec{"name": req(attrLit), "expr": a(attrExpr)}},
	"assign":   {attrs: map[string]attrSpec{"name": req(attrLit), "expr": req(attrExpr)}},
	"script": {attrs: map[string]attrSpec{"src": a(attrLit), "fetchid": a(attrExpr), "charset": a(attrLit),
		"timeout": a(attrLit), "maxage": a(attrLit), "maxstale": a(attrLit)}, text: true},
	"eventprocessor": {attrs: map[string]attrSpec{"statevariable": a(attrLit)}, children: set("transition")},
	"transition": {attrs: map[string]attrSpec{"event": a(attrLit), "state": a(attrList), "cond": a(attrExpr),
		"name": a(attrLit)}, children: executable},
	"if":     {attrs: map[string]attrSpec{"cond": req(attrExpr)}, children: withExec("elseif", "else")},
	"elseif": {attrs: map[string]attrSpec{"cond": req(attrExpr)}},
	"else":   {attrs: map[string]attrSpec{}},
	"log":    {attrs: map[string]attrSpec{"expr": req(attrExpr), "label": a(attrExpr)}},
	"exit":   {attrs: map[string]attrSpec{"expr": a(attrExpr), "namelist": a(attrList)}},
	"fetch": {attrs: map[string]attrSpec{"next": req(attrExpr), "type": a(attrExpr), "namelist": a(attrList),
		"method": a(attrExpr), "fetchid": a(attrLHS), "timeout": a(attrExpr), "maxage": a(attrExpr),
		"maxstale": a(attrExpr), "enctype": a(attrExpr)}},
	"goto": {attrs: map[string]attrSpec{"fetchid": req(attrExpr)}},
	"createccxml": {attrs: map[string]attrSpec{"next": req(attrExpr), "namelist": a(attrList), "method": a(attrExpr),
		"sessionid": a(attrLHS), "timeout": a(attrExpr), "maxage": a(attrExpr), "maxstale": a(attrExpr),
		"enctype": a(attrExpr), "parameters": a(attrExpr)}},
	"send": {attrs: map[string]attrSpec{"target": req(attrExpr), "targettype": a(attrExpr), "name": a(attrExpr),
		"data": a(attrExpr), "namelist": a(attrList), "delay": a(attrExpr), "sendid": a(attrLHS), "hints": a(attrExpr)}},
	"cancel": {attrs: map[string]attrSpec{"sendid": req(attrExpr)}},
	"move":   {attrs: map[string]attrSpec{"sessionid": req(attrExpr), "source": a(attrExpr), "event": a(attrExpr)}},
	"accept": {attrs: map[string]attrSpec{"connectionid": a(attrExpr), "hints": a(attrExpr)}},
	"reject": {attrs: map[string]attrSpec{"connectionid": a(attrExpr), "reason": a(attrExpr), "hints": a(attrExpr)}},
	"redirect": {attrs: map[string]attrSpec{"dest": req(attrExpr), "connectionid": a(attrExpr), "reason": a(attrExpr),
		"hints": a(attrExpr)}},
	"createcall": {attrs: map[string]attrSpec{"dest": req(attrExpr), "connectionid": a(attrLHS), "aai": a(attrExpr),
		"callerid": a(attrExpr), "hints": a(attrExpr), "timeout": a(attrExpr), "joinid": a(attrExpr),
		"joindirection": a(attrExpr)}},
	"disconnect": {attrs: map[string]attrSpec{"connectionid": a(attrExpr), "reason": a(attrExpr), "hints": a(attrExpr)}},
	"join": {attrs: map[string]attrSpec{"id1": req(attrExpr), "id2": req(attrExpr), "duplex": a(attrExpr),
		"hints": a(attrExpr), "dtmfclamp": a(attrExpr), "toneclamp": a(attrExpr), "entertone": a(attrExpr),
		"exittone": a(attrExpr), "autoinputgain": a(attrExpr), "autooutputgain": a(attrExpr)}},
	"unjoin": {attrs: map[string]attrSpec{"id1": req(attrExpr), "id2": req(attrExpr), "hints": a(attrExpr)}},
	"merge": {attrs: map[string]attrSpec{"connectionid1": req(attrExpr), "connectionid2": req(attrExpr),
		"hints": a(attrExpr)}},
	"createconference": {attrs: map[string]attrSpec{"conferenceid": req(attrLHS), "confname": a(attrExpr),
		"reservedtalkers": a(attrExpr), "reservedlisteners": a(attrExpr), "hints": a(attrExpr)}},
	"destroyconference": {attrs: map[string]attrSpec{"conferenceid": req(attrExpr), "hints": a(attrExpr)}},
	"dialogprepare": {attrs: map[string]attrSpec{"src": req(attrExpr), "type": a(attrExpr), "namelist": a(attrList),
		"dialogid": a(attrLHS), "connectionid": a(attrExpr), "conferenceid": a(attrExpr),
		"mediadirection": a(attrExpr), "maxage": a(attrExpr), "maxstale": a(attrExpr), "enctype": a(attrExpr),
		"method": a(attrExpr), "parameters": a(attrExpr), "hints": a(attrExpr)}},
	"dialogstart": {attrs: map[string]attrSpec{"src": a(attrExpr), "prepareddialogid": a(attrExpr),
		"type": a(attrExpr), "namelist": a(attrList), "dialogid": a(attrLHS), "connectionid": a(attrExpr),
		"conferenceid": a(attrExpr), "mediadirection": a(attrExpr), "maxage": a(attrExpr),
		"maxstale": a(attrExpr), "enctype": a(attrExpr), "method": a(attrExpr), "parameters": a(attrExpr),
		"hints": a(attrExpr)}},
	"dialogterminate": {attrs: map[string]attrSpec{"dialogid": req(attrExpr), "immediate": a(attrExpr),
		"hints": a(attrExpr)}},
}
