package perf

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/dop251/goja"

	"github.com/recfork/recfork/ccxml"
)

// CCXMLScenario measures the interpreter: events per second through one
// session's transition (an ECMAScript assign) and memory per idle session.
type CCXMLScenario struct{}

func (*CCXMLScenario) Name() string { return "ccxml" }
func (*CCXMLScenario) Keys() []string {
	return []string{"baseline.goja_calls_per_s", "ccxml.events_per_s", "ccxml.bytes_per_session"}
}
func (*CCXMLScenario) Steps(bool) int { return 3 }

// ccxmlPingDoc counts user.ping events in a document variable.
const ccxmlPingDoc = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
<var name="n" expr="0"/>
<eventprocessor>
<transition event="user.ping"><assign name="n" expr="n + 1"/></transition>
<transition event="user.stop"><exit expr="n"/></transition>
</eventprocessor>
</ccxml>`

func (*CCXMLScenario) Run(ctx context.Context, env *Env) error {
	events, rounds, sessions := 200000, 3, 10000
	if env.Quick {
		events, rounds, sessions = 20000, 3, 1000
	}
	env.Config("ccxml", map[string]any{"events": events, "rounds": rounds, "sessions": sessions,
		"document": "one transition assigning n = n + 1", "bytes": "heap + goroutine stacks per idle session after GC"})

	// Baseline: calls of a compiled ECMAScript function doing the same
	// arithmetic, in the same engine (goja) the interpreter runs.
	vm := goja.New()
	if _, err := vm.RunString("var n = 0; function f() { n = n + 1; }"); err != nil {
		return fmt.Errorf("goja baseline: %w", err)
	}
	f, ok := goja.AssertFunction(vm.Get("f"))
	if !ok {
		return fmt.Errorf("goja baseline: f is not a function")
	}
	var base []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < events; i++ {
			if _, err := f(goja.Undefined()); err != nil {
				return err
			}
		}
		base = append(base, float64(events)/time.Since(start).Seconds())
	}
	env.Results.Set("baseline.goja_calls_per_s", Median(base), rounds)
	env.Progress.Step("goja calls")

	in, err := ccxml.New(ccxml.Config{})
	if err != nil {
		return err
	}
	defer in.Close()
	doc, err := in.Compile(ctx, "perf-ping.ccxml", []byte(ccxmlPingDoc))
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}

	// Events per second: batches of 1000 posted, then wait for the queue to
	// drain (the session's Idle hook).
	idle := make(chan struct{}, 1)
	s, err := in.NewSession(doc, nil, ccxml.SessionOptions{Idle: func(*ccxml.Session) {
		select {
		case idle <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = s.Run(sctx) }()
	if err := waitIdle(ctx, idle); err != nil {
		return err
	}
	var rates []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < events; i += 1000 {
			for j := 0; j < min(1000, events-i); j++ {
				if err := s.Post(ccxml.Event{Name: "user.ping"}); err != nil {
					return err
				}
			}
			if err := waitIdle(ctx, idle); err != nil {
				return err
			}
		}
		rates = append(rates, float64(events)/time.Since(start).Seconds())
	}
	_ = s.Post(ccxml.Event{Name: "user.stop"})
	select {
	case <-s.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	env.Results.Set("ccxml.events_per_s", Median(rates), rounds)
	env.Progress.Step("events per second")

	// Memory per idle session.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ready := make(chan struct{}, sessions)
	all := make([]*ccxml.Session, 0, sessions)
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	for i := 0; i < sessions; i++ {
		once := false
		s, err := in.NewSession(doc, nil, ccxml.SessionOptions{Idle: func(*ccxml.Session) {
			if !once {
				once = true
				ready <- struct{}{}
			}
		}})
		if err != nil {
			return err
		}
		all = append(all, s)
		go func() { _ = s.Run(mctx) }()
	}
	for i := 0; i < sessions; i++ {
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc) + float64(after.StackInuse) - float64(before.StackInuse)) / float64(sessions)
	env.Results.Set("ccxml.bytes_per_session", per, sessions)
	mcancel()
	for _, s := range all {
		<-s.Done()
	}
	env.Progress.Step("memory per session")
	return nil
}

func waitIdle(ctx context.Context, idle <-chan struct{}) error {
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("session did not drain its queue in 30 s")
	}
}
