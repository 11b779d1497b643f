// Command recforkd is the recfork daemon: it answers SIP calls, runs a CCXML
// session per call and records calls over SIPREC with the data plane.
package main

import (
	"fmt"
	"os"
)

func main() {
	// The daemon is assembled in issue 5/6 (controlplane); until then it says so
	// plainly instead of pretending to serve calls.
	fmt.Fprintln(os.Stderr, "recforkd: the daemon is not assembled yet (see README, Status)")
	os.Exit(1)
}
