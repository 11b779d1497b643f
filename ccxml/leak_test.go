package ccxml_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
)

// TestNoGoroutineLeak: a session that leaves a delayed send pending and a
// child session running; after it exits and the interpreter closes, every
// goroutine the interpreter started is gone and no session is registered.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	in, _ := ccxml.New(ccxml.Config{})
	child, _ := filepath.Abs("testdata/conformance/lib/child.ccxml")
	d := mustCompile(t, in, `<ccxml version="1.0"><var name="c"/><eventprocessor>
<transition event="ccxml.loaded"><send name="'user.late'" target="session.id" delay="'3600s'"/><createccxml next="'`+child+`'" sessionid="c"/></transition>
<transition event="child.ready"><exit/></transition>
</eventprocessor></ccxml>`)
	s, _ := in.NewSession(d, nil, ccxml.SessionOptions{})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in.Sessions() != 1 {
		t.Fatalf("%d sessions, want the child still running", in.Sessions())
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if in.Sessions() != 0 {
		t.Fatalf("%d sessions after Close", in.Sessions())
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, started with %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// TestLoadCachesLocalDocuments: a local document is compiled once and shared
// until the file changes; a location outside AllowedRoots is refused.
func TestLoadCachesLocalDocuments(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.ccxml")
	if err := writeFile(path, `<ccxml version="1.0"/>`); err != nil {
		t.Fatal(err)
	}
	in, _ := ccxml.New(ccxml.Config{AllowedRoots: []string{dir}})
	defer in.Close()
	d1, err := in.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := in.Load(context.Background(), path)
	if d1 != d2 {
		t.Fatal("unchanged document compiled twice")
	}
	if err := writeFile(path, `<ccxml version="1.0"><var name="x"/></ccxml>`); err != nil {
		t.Fatal(err)
	}
	d3, err := in.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if d3 == d1 {
		t.Fatal("changed document not reloaded")
	}
	if _, err := in.Load(context.Background(), "/etc/hostname"); !errors.Is(err, ccxml.ErrNotAllowed) {
		t.Fatalf("outside roots: %v", err)
	}
}
