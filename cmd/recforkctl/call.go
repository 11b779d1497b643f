package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/recfork/recfork/controlplane/callgen"
)

// The demo caller and callee: real SIP and RTP, a recognisable PCMU tone each
// way, and counts of what came back (package callgen).

func init() {
	register(command{name: "call", summary: "place test calls that send a tone and count what comes back", run: runCall})
	register(command{name: "answer", summary: "answer test calls with a tone until stopped", run: runAnswer})
}

func runCall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "sip:demo@127.0.0.1:5060", "SIP URI to call")
	calls := fs.Int("calls", 1, "number of concurrent calls")
	duration := fs.Duration("duration", 5*time.Second, "how long each call sends media before hanging up")
	tone := fs.Float64("tone", 440, "tone frequency in Hz")
	ip := fs.String("ip", "127.0.0.1", "local address for SIP and RTP")
	dtmf := fs.Int("telephone-event", -1, "how many of the calls offer RFC 4733 telephone-event (DTMF in RTP); -1 means all")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: recforkctl call [--to URI] [--calls N] [--duration D] [--tone HZ] [--ip ADDR] [--telephone-event N] [--json]\n\nExit status 0 only if every call connected, lasted its duration and heard RTP back.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageCode(err)
	}
	if fs.NArg() != 0 || *calls < 1 {
		fs.Usage()
		return 2
	}
	if _, err := netip.ParseAddr(*ip); err != nil {
		fmt.Fprintf(stderr, "recforkctl call: --ip: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ep, err := callgen.NewEndpoint(net.JoinHostPort(*ip, "0"))
	if err != nil {
		fmt.Fprintf(stderr, "recforkctl call: %v\n", err)
		return 1
	}
	defer ep.Close()
	results := make([]callgen.Result, *calls)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			noDTMF := *dtmf >= 0 && i >= *dtmf
			results[i] = ep.Call(ctx, *to, callgen.CallOptions{Tone: *tone, Duration: *duration, NoTelephoneEvent: noDTMF})
			results[i].N = i + 1
		}()
	}
	wg.Wait()
	code := 0
	for _, r := range results {
		if r.Error != "" || r.Received == 0 {
			code = 1
		}
	}
	printResults(stdout, results, *asJSON)
	return code
}

func printResults(w io.Writer, results []callgen.Result, asJSON bool) {
	if asJSON {
		if results == nil {
			results = []callgen.Result{}
		}
		printJSON(w, results)
		return
	}
	t := newTable("CALL", "CALL-ID", "STATUS", "RTP SENT", "RTP RECEIVED", "HEARD", "ERROR")
	for _, r := range results {
		t.row(strconv.Itoa(r.N), r.CallID, strconv.Itoa(r.Status), strconv.FormatUint(r.Sent, 10),
			strconv.FormatUint(r.Received, 10), fmt.Sprintf("%.0f Hz", r.HeardHz), r.Error)
	}
	t.write(w)
}

func runAnswer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("answer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:5070", "SIP UDP address to answer on")
	tone := fs.Float64("tone", 880, "tone frequency in Hz sent to each caller")
	asJSON := fs.Bool("json", false, "print JSON on exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: recforkctl answer [--listen ADDR] [--tone HZ] [--json]\n\nAnswers every call with a tone until SIGTERM or SIGINT, then prints what it saw.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageCode(err)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ep, err := callgen.NewEndpoint(*listen)
	if err != nil {
		fmt.Fprintf(stderr, "recforkctl answer: %v\n", err)
		return 1
	}
	ep.Answer(*tone)
	fmt.Fprintf(stderr, "recforkctl answer: listening on %s\n", ep.Addr())
	<-ctx.Done()
	ep.Close()
	printResults(stdout, ep.Results(), *asJSON)
	return 0
}
