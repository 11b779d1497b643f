// Command recforksoak runs the soak of the perf suite: recorded calls with
// RTP through recforkd at a steady rate while a hostile generator abuses
// it, then checks that no call failed, (almost) no recorded copy was lost
// and every resource came back. It exits 1 when a check fails, 2 on bad
// flags, 3 when the soak could not run. It needs root.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/recfork/recfork/perf"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recforksoak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "the CI variant: 90 s at 10 calls/s of 5 s (50 at once)")
	dur := fs.Duration("duration", 10*time.Minute, "how long calls are placed")
	cps := fs.Float64("cps", 20, "new calls per second")
	hold := fs.Duration("hold", 10*time.Second, "length of each call (cps x hold calls at once)")
	out := fs.String("out", "", "results file (default perf/results/soak.json, soak-quick.json with -quick)")
	verbose := fs.Bool("v", false, "progress on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *quick {
		*dur, *cps, *hold = 90*time.Second, 10, 5*time.Second
	}
	if *dur <= 0 || *cps <= 0 || *hold <= 0 {
		fmt.Fprintln(stderr, "recforksoak: -duration, -cps and -hold must be positive")
		return 2
	}
	if *out == "" {
		*out = "perf/results/soak.json"
		if *quick {
			*out = "perf/results/soak-quick.json"
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := perf.RunSoak(ctx, perf.SoakConfig{Duration: *dur, CPS: *cps, Hold: *hold,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		fmt.Fprintln(stderr, "recforksoak:", err)
		return 3
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		err = os.WriteFile(*out, append(b, '\n'), 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "recforksoak:", err)
		}
	}
	fmt.Fprintf(stdout, "soak: %.0f s, %s engine, %d calls (%d failed), peak %d recorded at once\n",
		res.Seconds, res.Engine, res.Calls.Successful, res.Calls.Failed, res.PeakCalls)
	fmt.Fprintf(stdout, "copies: %d sent, %d received by the srs, %.4f%% lost\n", res.Copied, res.Received, 100*res.LostFraction)
	fmt.Fprintf(stdout, "hostile: %v\nrefused: %v\n", res.Hostile, res.Refused)
	fmt.Fprintf(stdout, "resources start %+v\n          peak  %+v\n          end   %+v\n", res.Start, res.Peak, res.End)
	if len(res.Failures) > 0 {
		for _, f := range res.Failures {
			fmt.Fprintln(stdout, "FAIL:", f)
		}
		return 1
	}
	fmt.Fprintln(stdout, "PASS")
	return 0
}
