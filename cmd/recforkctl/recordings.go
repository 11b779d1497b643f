package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/recfork/recfork/controlplane"
)

func init() {
	register(command{name: "recordings", summary: "list recordings with per-stream packet counters", run: runRecordings})
	register(command{name: "record", summary: "mute, unmute or stop a connection's recording", run: runRecord})
}

func runRecordings(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recordings", flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	if code, ok := parseFlags(fs, args, stderr, "recforkctl recordings [--admin SOCKET] [--json]"); !ok {
		return code
	}
	var recs []controlplane.RecordingInfo
	if err := newAdminClient(*socket).do("GET", "/v1/recordings", &recs); err != nil {
		return errCode(stderr, "recordings", err)
	}
	if *asJSON {
		printJSON(stdout, recs)
		return exitOK
	}
	t := newTable("CONNECTION", "SRS", "TRANSPORT", "STATE", "DIRECTION", "LABEL", "MODE", "COPIED", "MUTED", "PATH", "RECORDER")
	for _, r := range recs {
		// With an SRS list, show the one holding the recording.
		srs := r.SRS
		if r.Active != "" {
			srs = r.Active
		}
		for _, s := range r.Streams {
			t.row(r.ConnectionID, srs, orDash(r.Transport), r.State, s.Direction, s.Label, s.Mode,
				strconv.FormatUint(s.CopiedPackets, 10), strconv.FormatUint(s.MutedPackets, 10), orDash(s.Path), orDash(s.Recorder))
		}
		if len(r.Streams) == 0 {
			t.row(r.ConnectionID, srs, orDash(r.Transport), r.State, "-", "-", "-", "0", "0", "-", "-")
		}
	}
	t.write(stdout)
	return exitOK
}

// runRecord goes through the same SIPREC path as a document's bvr.record:
// mute stops the copies in the data plane before the a=inactive re-INVITE
// leaves; the call's CCXML session receives the resulting bvr.record.update
// (or error.bvr.record) like for its own request.
func runRecord(args []string, stdout, stderr io.Writer) int {
	const usage = "recforkctl record mute|unmute|stop CONNECTION [--direction inbound|outbound] [--admin SOCKET] [--json]"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: "+usage+"\n\n"+exitCodesHelp)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	action := args[0]
	if action != "mute" && action != "unmute" && action != "stop" {
		fmt.Fprintf(stderr, "recforkctl record: unknown action %q\nusage: %s\n", action, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("record "+action, flag.ContinueOnError)
	socket, asJSON := adminFlags(fs)
	dir := fs.String("direction", "both", "inbound, outbound or both")
	// Flags may come before or after CONNECTION.
	var conn string
	rest := args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		conn, rest = rest[0], rest[1:]
	}
	if code, ok := parseFlags(fs, rest, stderr, usage); !ok {
		return code
	}
	if conn == "" && fs.NArg() == 1 {
		conn = fs.Arg(0)
	} else if fs.NArg() != 0 || conn == "" {
		fs.Usage()
		return exitUsage
	}
	switch *dir {
	case "both", "inbound", "outbound":
	default:
		fmt.Fprintf(stderr, "recforkctl record: --direction %q: want inbound, outbound or both\n", *dir)
		return exitUsage
	}
	var res controlplane.RecordResult
	path := "/v1/recordings/" + url.PathEscape(conn) + "/" + action + "?direction=" + url.QueryEscape(*dir)
	err := newAdminClient(*socket).do("POST", path, &res)
	if err != nil && res.Event == "" {
		return errCode(stderr, "record", err)
	}
	if *asJSON {
		printJSON(stdout, res)
	} else {
		t := newTable("CONNECTION", "EVENT", "INBOUND", "OUTBOUND", "DETAIL")
		t.row(res.ConnectionID, res.Event, res.Inbound, res.Outbound, orDash(res.Operation+res.Reason))
		t.write(stdout)
	}
	if err != nil {
		return exitFailed
	}
	return exitOK
}
