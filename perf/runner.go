package perf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario is one measurement of the suite. Run writes the keys it owns into
// env.Results; keys it leaves unset are marked with its error.
type Scenario interface {
	// Name is the scenario's short name (e.g. "fork.ebpf").
	Name() string
	// Keys are the metric keys the scenario writes.
	Keys() []string
	// Steps is the number of progress steps Run reports (an estimate).
	Steps(quick bool) int
	// Run measures. It must return within the context's deadline, stop every
	// process and release every namespace it started, also on error.
	Run(ctx context.Context, env *Env) error
}

// SkipError means the machine lacks a prerequisite; the keys are marked
// skipped, with the reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a *SkipError.
func Skip(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// ErrNotBuilt marks a scenario whose subject is not in the tree yet.
var ErrNotBuilt = errors.New("dependency not built yet")

// Env is what a scenario gets.
type Env struct {
	Quick    bool
	Results  *Results
	Progress *Progress
	Log      *slog.Logger
	// Shared holds values one scenario hands to another in the same run (the
	// fork baseline's per-packet CPU, for example).
	Shared map[string]any
}

// Config records the parameters of a scenario into its result.
func (e *Env) Config(name string, kv map[string]any) {
	e.Results.mu.Lock()
	defer e.Results.mu.Unlock()
	s := e.Results.Scenarios[name]
	if s.Config == nil {
		s.Config = map[string]any{}
	}
	for k, v := range kv {
		s.Config[k] = v
	}
	e.Results.Scenarios[name] = s
}

// Runner runs scenarios one after the other, each bounded by its budget.
type Runner struct {
	Env       *Env
	Scenarios []Scenario
	// Budget bounds one scenario's run time.
	Budget func(s Scenario) time.Duration
	// Only, when not empty, selects scenarios whose name has one of these prefixes.
	Only []string
}

// Run runs every selected scenario and fills the machine description and ratios.
func (r *Runner) Run(ctx context.Context) {
	res := r.Env.Results
	res.Started = time.Now().UTC()
	res.Machine = describeMachine()
	for _, s := range r.Scenarios {
		if !r.selected(s.Name()) {
			res.MarkUnset(s.Keys(), StatusNotMeasured, "scenario not selected in this run")
			res.SetScenario(s.Name(), ScenarioResult{Status: StatusNotMeasured, Reason: "not selected"})
			continue
		}
		if ctx.Err() != nil {
			why := "suite interrupted"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "the suite's time budget was spent before this scenario"
			}
			res.MarkUnset(s.Keys(), StatusNotMeasured, why)
			res.SetScenario(s.Name(), ScenarioResult{Status: StatusNotMeasured, Reason: why})
			continue
		}
		r.runOne(ctx, s)
	}
	res.ComputeRatios()
	res.Finished = time.Now().UTC()
}

func (r *Runner) selected(name string) bool {
	if len(r.Only) == 0 {
		return true
	}
	for _, p := range r.Only {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (r *Runner) runOne(ctx context.Context, s Scenario) {
	env := r.Env
	budget := 10 * time.Minute
	if r.Budget != nil {
		budget = r.Budget(s)
	}
	sctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	env.Progress.Begin(s.Name(), s.Steps(env.Quick))
	start := time.Now()
	err := runGuarded(sctx, s, env)
	took := time.Since(start).Seconds()
	sr := env.Results.Scenarios[s.Name()]
	sr.Seconds = took
	var skip *SkipError
	switch {
	case err == nil:
		sr.Status, sr.Reason = StatusMeasured, ""
		env.Results.MarkUnset(s.Keys(), StatusNotMeasured, "scenario ended without measuring this key")
		env.Progress.End("done")
	case errors.As(err, &skip):
		sr.Status, sr.Reason = StatusSkipped, skip.Reason
		env.Results.MarkUnset(s.Keys(), StatusSkipped, skip.Reason)
		env.Progress.End("skipped: " + skip.Reason)
	default:
		reason := err.Error()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			reason = fmt.Sprintf("scenario exceeded its %s budget: %v", budget, err)
		}
		sr.Status, sr.Reason = StatusNotMeasured, reason
		env.Results.MarkUnset(s.Keys(), StatusNotMeasured, "not measured: "+reason)
		env.Progress.End("not measured: " + reason)
	}
	env.Results.SetScenario(s.Name(), sr)
}

// runGuarded turns a panic of a scenario into its error, so one broken
// dependency cannot take the whole suite (and its cleanup) down.
func runGuarded(ctx context.Context, s Scenario, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			env.Log.Error("scenario panicked", "scenario", s.Name(), "panic", p, "stack", string(buf))
			err = fmt.Errorf("scenario panicked: %v", p)
		}
	}()
	return s.Run(ctx, env)
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load1 = f[0]
		}
	}
	return m
}
