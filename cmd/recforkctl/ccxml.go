package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/ccxml/sim"
)

func init() {
	register(command{name: "ccxml", summary: "check CCXML documents or run one against a simulated platform", run: runCCXML})
}

const ccxmlUsage = `usage:
  recforkctl ccxml check FILE...
      validate documents; print file:line:col: message; exit 1 on errors.
      Likely mistakes print as file:line:col: warning: ... and do not change
      the exit code (bvr.record: a namelist naming undeclared variables or
      lacking type or uri, a literal mode other than active, inactive, none,
      nochange, a uri that is not a sip: or sips: URI)
  recforkctl ccxml run FILE [--call FROM TO] [--dtmf KEYS] [--timeout D] [--trace]
      run a document against a simulated platform; --call delivers an inbound
      call (connection.alerting) from FROM to TO (SIP URIs); --dtmf makes its
      caller press KEYS once connected (connection.signal each); each <log>
      prints one line; --trace also prints each event as the session takes it
      from its queue ("trace: NAME -> FILE:LINE:COL" for the transition
      chosen, "trace: NAME (dropped)" when none was). Exit 0 on <exit> or when the
      last connection is gone, 1 on an unhandled error or an invalid document,
      2 on timeout (default 30s).
`

func runCCXML(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, ccxmlUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "check":
		return ccxmlCheck(args[1:], stdout, stderr)
	case "run":
		return ccxmlRun(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "recforkctl ccxml: unknown subcommand %q\n\n%s", args[0], ccxmlUsage)
	return 2
}

func newInterpreter(stderr io.Writer) (*ccxml.Interpreter, error) {
	return ccxml.New(ccxml.Config{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

// printDiagnostics prints a compile error, one diagnostic a line.
func printDiagnostics(w io.Writer, file string, err error) {
	var ds ccxml.Diagnostics
	if errors.As(err, &ds) {
		for _, d := range ds {
			fmt.Fprintln(w, d.Error())
		}
		return
	}
	fmt.Fprintf(w, "%s:1:1: %v\n", file, err)
}

func ccxmlCheck(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprint(stderr, ccxmlUsage)
		return 2
	}
	in, err := newInterpreter(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer in.Close()
	code := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stdout, "%s:1:1: %v\n", f, err)
			code = 1
			continue
		}
		if _, err := in.Compile(context.Background(), f, src); err != nil {
			printDiagnostics(stdout, f, err)
			code = 1
			continue
		}
		for _, w := range ccxml.Lint(f, src) {
			fmt.Fprintln(stdout, w.Error())
		}
	}
	return code
}

func ccxmlRun(args []string, stdout, stderr io.Writer) int {
	var file, from, to, dtmf string
	var trace bool
	timeout := 30 * time.Second
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--call", "-call":
			if i+2 >= len(args) {
				fmt.Fprintln(stderr, "recforkctl ccxml run: --call needs FROM and TO")
				return 2
			}
			from, to = args[i+1], args[i+2]
			i += 2
		case "--dtmf", "-dtmf":
			if i+1 >= len(args) || strings.Trim(args[i+1], "0123456789*#ABCD") != "" {
				fmt.Fprintln(stderr, "recforkctl ccxml run: --dtmf needs keys from 0-9 * # A-D")
				return 2
			}
			dtmf = args[i+1]
			i++
		case "--trace", "-trace":
			trace = true
		case "--timeout", "-timeout":
			if i+1 >= len(args) {
				fmt.Fprintln(stderr, "recforkctl ccxml run: --timeout needs a duration")
				return 2
			}
			d, err := time.ParseDuration(args[i+1])
			if err != nil || d <= 0 {
				fmt.Fprintf(stderr, "recforkctl ccxml run: bad --timeout %q\n", args[i+1])
				return 2
			}
			timeout = d
			i++
		default:
			if file != "" || (len(a) > 0 && a[0] == '-') {
				fmt.Fprintf(stderr, "recforkctl ccxml run: unexpected argument %q\n\n%s", a, ccxmlUsage)
				return 2
			}
			file = a
		}
	}
	if file == "" {
		fmt.Fprint(stderr, ccxmlUsage)
		return 2
	}
	in, err := newInterpreter(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer in.Close()
	abs, err := filepath.Abs(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	doc, err := in.Load(ctx, abs)
	if err != nil {
		printDiagnostics(stderr, file, err)
		return 1
	}
	o := sim.RunOptions{From: from, To: to, Platform: sim.Config{DTMF: dtmf}, Log: func(label, value string) {
		if label == "" {
			fmt.Fprintln(stdout, value)
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", label, value)
		}
	}}
	if trace {
		o.Trace = func(e ccxml.TraceEntry) { fmt.Fprintln(stdout, traceLine(e, abs, file)) }
	}
	res := sim.Run(ctx, in, doc, o)
	switch res.Code {
	case 1:
		fmt.Fprintf(stderr, "recforkctl ccxml run: session ended: %s %s %s\n", res.Status.Reason, res.Status.Event, res.Status.Detail)
	case 2:
		fmt.Fprintf(stderr, "recforkctl ccxml run: timed out after %v\n", timeout)
	}
	return res.Code
}

// traceLine renders one trace entry, naming the document as the user did.
func traceLine(e ccxml.TraceEntry, abs, file string) string {
	switch e.Result {
	case "handled":
		return "trace: " + e.Event + " -> " + strings.Replace(e.Transition, abs, file, 1)
	case "ended":
		return "trace: " + e.Event + " (unhandled: ends the session)"
	default:
		return "trace: " + e.Event + " (" + e.Result + ")"
	}
}
