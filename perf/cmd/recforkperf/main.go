// Command recforkperf runs recfork's performance suite and writes its results
// (JSON), the Markdown report and the fork chart. It needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/recfork/recfork/perf"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("recforkperf", flag.ContinueOnError)
	out := fs.String("out", "perf/results/latest.json", "results file (JSON)")
	readme := fs.String("readme", "", "Markdown report to write (empty: none)")
	chart := fs.String("chart", "", "SVG chart of the fork scenarios (default: fork.svg beside -out)")
	quick := fs.Bool("quick", false, "fewer samples: the whole suite in under two minutes")
	only := fs.String("only", "", "comma-separated scenario name prefixes to run (default all)")
	verbose := fs.Bool("v", false, "debug logging")
	render := fs.Bool("render", false, "run nothing: rewrite the README and the chart from the -out results file")
	generator := fs.String("generator", "xdp", "load generator of the fork scenarios: xdp (live frames; AF_XDP if the kernel refuses them), xsk (AF_XDP copy mode), packet (AF_PACKET sendmmsg) or sendmmsg (raw IP socket)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, ok := perf.Generators[*generator]; !ok {
		fmt.Fprintf(os.Stderr, "recforkperf: -generator %q: want xdp, xsk, packet or sendmmsg\n", *generator)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *chart == "" {
		*chart = filepath.Join(filepath.Dir(*out), "fork.svg")
	}

	// Ctrl-C or SIGTERM cancels the running scenario, whose deferred cleanup
	// stops its processes and deletes its namespaces; the partial results are
	// still written.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *quick {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, perf.QuickDeadline)
		defer cancel()
	}

	if *render {
		res, err := perf.ReadResults(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "recforkperf:", err)
			return 1
		}
		if err := perf.WriteChart(*chart, res); err != nil {
			fmt.Fprintln(os.Stderr, "recforkperf:", err)
			return 1
		}
		if *readme != "" {
			if err := perf.WriteReadme(*readme, res); err != nil {
				fmt.Fprintln(os.Stderr, "recforkperf:", err)
				return 1
			}
		}
		return 0
	}
	fds := perf.RaiseFileLimit(200000)
	perf.SeparateGenerator()
	res := perf.NewResults(*quick)
	r := &perf.Runner{
		Env:       &perf.Env{Quick: *quick, Results: res, Progress: perf.NewProgress(os.Stderr), Log: log, Shared: map[string]any{"fd_limit": fds, "generator": *generator}},
		Scenarios: perf.Suite(),
		Budget:    perf.Budget(*quick),
	}
	if *only != "" {
		r.Only = strings.Split(*only, ",")
	}
	r.Run(ctx)

	code := 0
	if err := res.WriteFile(*out); err != nil {
		fmt.Fprintln(os.Stderr, "recforkperf:", err)
		code = 1
	}
	if err := perf.WriteChart(*chart, res); err != nil {
		fmt.Fprintln(os.Stderr, "recforkperf:", err)
		code = 1
	}
	if *readme != "" {
		if err := perf.WriteReadme(*readme, res); err != nil {
			fmt.Fprintln(os.Stderr, "recforkperf:", err)
			code = 1
		}
	}
	for _, s := range perf.Summary(res) {
		fmt.Fprintln(os.Stderr, "  "+s)
	}
	fmt.Fprintf(os.Stderr, "results: %s\n", *out)
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return 130
	}
	return code
}
