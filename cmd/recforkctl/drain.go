package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/recfork/recfork/controlplane"
)

func init() {
	register(command{name: "drain", summary: "stop taking new calls (503 to INVITE and OPTIONS); calls in progress go on", run: runDrain(true)})
	register(command{name: "undrain", summary: "take new calls again after drain", run: runDrain(false)})
}

// runDrain turns draining on or off. With --wait, drain returns once the
// last call has ended (checked every second), so a script can stop the
// daemon with nothing cut off.
func runDrain(on bool) func(args []string, stdout, stderr io.Writer) int {
	name := "undrain"
	if on {
		name = "drain"
	}
	return func(args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		socket, asJSON := adminFlags(fs)
		var wait *bool
		if on {
			wait = fs.Bool("wait", false, "return when no call is left")
		}
		if code, ok := parseFlags(fs, args, stderr, "recforkctl "+name+" [--admin SOCKET] [--json]"+map[bool]string{true: " [--wait]"}[on]); !ok {
			return code
		}
		c := newAdminClient(*socket)
		var di controlplane.DrainInfo
		if err := c.do("POST", "/v1/"+name, &di); err != nil {
			return errCode(stderr, name, err)
		}
		for wait != nil && *wait && di.Calls > 0 {
			time.Sleep(time.Second)
			if err := c.do("GET", "/v1/drain", &di); err != nil {
				return errCode(stderr, name, err)
			}
		}
		if *asJSON {
			printJSON(stdout, di)
			return exitOK
		}
		printDrain(stdout, di)
		return exitOK
	}
}

func printDrain(w io.Writer, di controlplane.DrainInfo) {
	if !di.Draining {
		fmt.Fprintf(w, "taking new calls; %d calls, %d recordings\n", di.Calls, di.Recordings)
		return
	}
	fmt.Fprintf(w, "draining since %s; %d calls, %d recordings left\n", di.Since.Format(time.RFC3339), di.Calls, di.Recordings)
}
