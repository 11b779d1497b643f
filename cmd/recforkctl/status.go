package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
)

func init() {
	register(command{name: "status", summary: "show the daemon: SIP address, engine, SRS, counts", run: runStatus})
	register(command{name: "calls", summary: "list calls and their connections", run: runCalls})
	register(command{name: "sessions", summary: "list CCXML sessions", run: runSessions})
	register(command{name: "stats", summary: "show data-plane engine counters", run: runStats})
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	if code, ok := parseFlags(fs, args, stderr, "recforkctl status [--admin SOCKET] [--json]"); !ok {
		return code
	}
	var st controlplane.StatusInfo
	if err := newAdminClient(*socket).do("GET", "/v1/status", &st); err != nil {
		return errCode(stderr, "status", err)
	}
	if *asJSON {
		printJSON(stdout, st)
		return exitOK
	}
	t := newTable("FIELD", "VALUE")
	t.row("version", st.Version)
	t.row("uptime", time.Since(st.Started).Round(time.Second).String())
	t.row("sip", st.SIP+" (udp, tcp)")
	t.row("media ip", st.MediaIP)
	t.row("engine", st.Engine)
	t.row("srs", st.SRS)
	t.row("app", st.App)
	if st.Draining {
		t.row("draining", "yes, since "+st.DrainSince.Format(time.RFC3339)+" ("+strconv.Itoa(st.Calls)+" calls left)")
	} else {
		t.row("draining", "no")
	}
	if st.State != nil {
		t.row("shared state", "node "+st.State.Node+map[bool]string{true: ", standby", false: ""}[st.State.Standby]+
			", "+strconv.Itoa(st.State.TakenOver)+" recordings of dead nodes ended")
	}
	t.row("calls", strconv.Itoa(st.Calls))
	t.row("connections", strconv.Itoa(st.Connections))
	t.row("recordings", strconv.Itoa(st.Recordings))
	t.row("ccxml sessions", strconv.Itoa(st.Sessions))
	t.row("endpoints", strconv.Itoa(st.Endpoints))
	t.row("ports free", strconv.Itoa(st.PortsFree))
	t.write(stdout)
	if len(st.SRSs) > 0 {
		fmt.Fprintln(stdout)
		h := newTable("SRS", "STATE", "FAILURES", "PROBES", "LAST ERROR")
		for _, s := range st.SRSs {
			state := "up"
			switch {
			case !s.Up:
				state = "down"
			case time.Now().Before(s.RetryAfter):
				state = "retry-after " + time.Until(s.RetryAfter).Round(time.Second).String()
			}
			h.row(s.URI, state, strconv.Itoa(s.Failures), strconv.FormatUint(s.Probes, 10), orDash(s.LastError))
		}
		h.write(stdout)
	}
	return exitOK
}

func runCalls(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	paths := fs.Bool("paths", false, "list each connection's relays and copies with the path (kernel, userspace) and why not the kernel")
	if code, ok := parseFlags(fs, args, stderr, "recforkctl calls [--admin SOCKET] [--paths] [--json]"); !ok {
		return code
	}
	var calls []controlplane.CallInfo
	if err := newAdminClient(*socket).do("GET", "/v1/calls", &calls); err != nil {
		return errCode(stderr, "calls", err)
	}
	if *asJSON {
		printJSON(stdout, calls)
		return exitOK
	}
	if *paths {
		printPaths(stdout, calls)
		return exitOK
	}
	t := newTable("SESSION", "CONNECTION", "STATE", "DIR", "REMOTE", "MEDIA", "CODEC", "REC", "RX", "TX", "AGE", "COPIES", "RELAY")
	for _, c := range calls {
		for _, ci := range c.Connections {
			dir := "in"
			if ci.Originator == "local" {
				dir = "out"
			}
			var rx, tx uint64
			if ci.Stats != nil {
				rx, tx = ci.Stats.RxPackets, ci.Stats.TxPackets
			}
			rec := "-"
			if ci.Recording {
				rec = "yes"
			}
			t.row(orDash(c.SessionID), ci.ID, string(ci.State), dir, ci.Remote, orDash(ci.MediaLocal)+" <-> "+orDash(ci.MediaPeer),
				orDash(ci.Codec), rec, strconv.FormatUint(rx, 10), strconv.FormatUint(tx, 10),
				time.Since(ci.Created).Round(time.Second).String(), copiesPath(ci.MediaPath), relayPath(ci.MediaPath))
		}
	}
	t.write(stdout)
	return exitOK
}

func runSessions(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	if code, ok := parseFlags(fs, args, stderr, "recforkctl sessions [--admin SOCKET] [--json]"); !ok {
		return code
	}
	var ss []controlplane.SessionInfo
	if err := newAdminClient(*socket).do("GET", "/v1/sessions", &ss); err != nil {
		return errCode(stderr, "sessions", err)
	}
	if *asJSON {
		printJSON(stdout, ss)
		return exitOK
	}
	t := newTable("SESSION", "STARTUP", "URI", "CONNECTIONS", "AGE")
	for _, s := range ss {
		conns := "-"
		if len(s.Connections) > 0 {
			conns = fmt.Sprint(s.Connections)
		}
		t.row(s.ID, s.StartupMode, s.URI, conns, time.Since(s.Started).Round(time.Second).String())
	}
	t.write(stdout)
	return exitOK
}

func runStats(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	if code, ok := parseFlags(fs, args, stderr, "recforkctl stats [--admin SOCKET] [--json]"); !ok {
		return code
	}
	var st dataplane.EngineStats
	if err := newAdminClient(*socket).do("GET", "/v1/stats", &st); err != nil {
		return errCode(stderr, "stats", err)
	}
	if *asJSON {
		printJSON(stdout, st)
		return exitOK
	}
	t := newTable("COUNTER", "VALUE")
	t.row("engine", st.Engine)
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"endpoints", uint64(st.Endpoints)}, {"joins", uint64(st.Joins)}, {"forks", uint64(st.Forks)},
		{"ports free", uint64(st.PortsFree)}, {"packets copied", st.CopiedPackets}, {"packets muted", st.MutedPackets},
		{"packets relayed", st.Relayed}, {"packets dropped", st.Dropped},
	} {
		t.row(kv.k, strconv.FormatUint(kv.v, 10))
	}
	t.write(stdout)
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// relayPath is the RELAY column: the path of the connection's relays, and
// why not the kernel. The reason goes last: it is the widest.
func relayPath(p *controlplane.MediaPathInfo) string {
	if p == nil {
		return "-"
	}
	if p.RelayReason != "" {
		return p.Relay + " (" + p.RelayReason + ")"
	}
	return p.Relay
}

// copiesPath is the COPIES column: each recorded direction's path, as
// "in:kernel,out:userspace"; the reasons are in --json and the log.
func copiesPath(p *controlplane.MediaPathInfo) string {
	if p == nil || len(p.Copies) == 0 {
		return "-"
	}
	s := ""
	for i, c := range p.Copies {
		if i > 0 {
			s += ","
		}
		d := c.Direction
		switch d {
		case "inbound":
			d = "in"
		case "outbound":
			d = "out"
		}
		s += d + ":" + c.Path
	}
	return s
}

// printPaths is `calls --paths`: one row per relay (what the connection
// receives, sent out of TO) and per recorded direction's copies; the reason
// is last, the only column with spaces.
func printPaths(w io.Writer, calls []controlplane.CallInfo) {
	t := newTable("CONNECTION", "MEDIA", "TO", "PATH", "WHY")
	for _, c := range calls {
		for _, ci := range c.Connections {
			p := ci.MediaPath
			if p == nil {
				t.row(ci.ID, "-", "-", "-", "the data plane does not report paths")
				continue
			}
			if len(p.Relays) == 0 {
				t.row(ci.ID, "relay", "-", p.Relay, "not joined")
			}
			for _, r := range p.Relays {
				t.row(ci.ID, "relay", r.To, r.Path, orDash(r.Reason))
			}
			for _, cp := range p.Copies {
				t.row(ci.ID, "copies", cp.Direction, cp.Path, orDash(cp.Reason))
			}
		}
	}
	t.write(w)
}
