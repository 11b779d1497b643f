package ccxml_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
)

const pingDoc = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
<var name="n" expr="0"/>
<eventprocessor>
<transition event="user.ping"><assign name="n" expr="n + 1"/></transition>
<transition event="user.stop"><exit expr="n"/></transition>
</eventprocessor>
</ccxml>`

func mustCompile(tb testing.TB, in *ccxml.Interpreter, src string) *ccxml.Document {
	tb.Helper()
	d, err := in.Compile(context.Background(), "mem.ccxml", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestSessionLifecycle(t *testing.T) {
	in, _ := ccxml.New(ccxml.Config{})
	d := mustCompile(t, in, pingDoc)
	s, err := in.NewSession(d, nil, ccxml.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := s.Post(ccxml.Event{Name: "user.ping"}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Post(ccxml.Event{Name: "user.stop"})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
	}
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	st := s.Status()
	if st.Reason != "exit" || fmt.Sprint(st.Expr) != "10" {
		t.Fatalf("status %+v, want exit with 10", st)
	}
	if err := s.Post(ccxml.Event{Name: "user.ping"}); !errors.Is(err, ccxml.ErrSessionClosed) {
		t.Fatalf("post after end: %v", err)
	}
	if in.Sessions() != 0 {
		t.Fatalf("%d sessions still registered", in.Sessions())
	}
}

func TestSessionCancel(t *testing.T) {
	in, _ := ccxml.New(ccxml.Config{})
	s, _ := in.NewSession(mustCompile(t, in, pingDoc), nil, ccxml.SessionOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	if s.Status().Reason != "canceled" {
		t.Fatalf("status %+v", s.Status())
	}
}

// panicky is a platform whose Accept panics: the session it serves ends,
// others go on.
type panicky struct{ ccxml.Unsupported }

func (panicky) Accept(context.Context, *ccxml.Session, ccxml.AcceptRequest) error {
	panic("platform bug")
}

func TestPanicIsolation(t *testing.T) {
	in, _ := ccxml.New(ccxml.Config{})
	bad := mustCompile(t, in, `<ccxml version="1.0"><eventprocessor><transition event="connection.alerting"><accept/></transition></eventprocessor></ccxml>`)
	s1, _ := in.NewSession(bad, panicky{}, ccxml.SessionOptions{})
	s2, _ := in.NewSession(mustCompile(t, in, pingDoc), nil, ccxml.SessionOptions{})
	_ = s1.Post(ccxml.Event{Name: "connection.alerting", Fields: map[string]any{"connectionid": "c1"}})
	done1 := make(chan error, 1)
	go func() { done1 <- s1.Run(context.Background()) }()
	go func() { _ = s2.Run(context.Background()) }()
	if err := <-done1; err == nil || s1.Status().Reason != "panic" {
		t.Fatalf("s1: %v %+v", err, s1.Status())
	}
	_ = s2.Post(ccxml.Event{Name: "user.stop"})
	<-s2.Done()
	if s2.Status().Reason != "exit" {
		t.Fatalf("s2: %+v", s2.Status())
	}
}

// BenchmarkEvents measures events per second through one simple transition
// (an assign) on one session.
func BenchmarkEvents(b *testing.B) {
	in, _ := ccxml.New(ccxml.Config{})
	d := mustCompile(b, in, pingDoc)
	idle := make(chan struct{}, 1)
	s2, _ := in.NewSession(d, nil, ccxml.SessionOptions{Idle: func(*ccxml.Session) {
		select {
		case idle <- struct{}{}:
		default:
		}
	}})
	go func() { _ = s2.Run(context.Background()) }()
	<-idle
	b.ResetTimer()
	start := time.Now()
	const batch = 1000
	for i := 0; i < b.N; i += batch {
		n := batch
		if b.N-i < n {
			n = b.N - i
		}
		for j := 0; j < n; j++ {
			_ = s2.Post(ccxml.Event{Name: "user.ping"})
		}
		<-idle
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	_ = s2.Post(ccxml.Event{Name: "user.stop"})
	<-s2.Done()
}

// BenchmarkIdleSessionMemory measures heap per idle session: 10,000 sessions
// of one document, each past ccxml.loaded and waiting.
func BenchmarkIdleSessionMemory(b *testing.B) {
	in, _ := ccxml.New(ccxml.Config{})
	d := mustCompile(b, in, pingDoc)
	const n = 10000
	for it := 0; it < b.N; it++ {
		ctx, cancel := context.WithCancel(context.Background())
		idle := make(chan struct{}, n)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sessions := make([]*ccxml.Session, n)
		for i := range sessions {
			var once bool
			s, _ := in.NewSession(d, nil, ccxml.SessionOptions{Idle: func(*ccxml.Session) {
				if !once {
					once = true
					idle <- struct{}{}
				}
			}})
			sessions[i] = s
			go func() { _ = s.Run(ctx) }()
		}
		for i := 0; i < n; i++ {
			<-idle
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/session")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-bytes/session")
		cancel()
		for _, s := range sessions {
			<-s.Done()
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
