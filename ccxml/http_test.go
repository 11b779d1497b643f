package ccxml_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
)

func runSession(t *testing.T, in *ccxml.Interpreter, d *ccxml.Document, opts ccxml.SessionOptions) (*ccxml.Session, chan string) {
	t.Helper()
	logs := make(chan string, 16)
	opts.Log = func(l, v string) { logs <- v }
	s, err := in.NewSession(d, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	t.Cleanup(func() { _ = s.Kill(); <-s.Done() })
	return s, logs
}

func waitLog(t *testing.T, logs chan string, want string) {
	t.Helper()
	select {
	case got := <-logs:
		if got != want {
			t.Fatalf("log %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no log line, want %q", want)
	}
}

// TestHTTPFetchAndCache fetches documents over HTTP on loopback: caching
// follows Cache-Control max-age, a maxage of 0 forces a new fetch, and a
// location outside AllowedRoots is refused.
func TestHTTPFetchAndCache(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/next.ccxml":
			hits.Add(1)
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, `<ccxml version="1.0"><eventprocessor><transition event="ccxml.loaded"><log expr="'next'"/></transition></eventprocessor></ccxml>`)
		case "/slow.ccxml":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	in, err := ccxml.New(ccxml.Config{AllowedRoots: []string{srv.URL + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for i := 0; i < 2; i++ {
		if _, err := in.Load(context.Background(), srv.URL+"/next.ccxml"); err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}
	doc := `<ccxml version="1.0"><var name="f"/><eventprocessor>
<transition event="ccxml.loaded"><fetch next="'` + srv.URL + `/next.ccxml'" maxage="'0'" fetchid="f"/><fetch next="'` + srv.URL + `/slow.ccxml'" timeout="'100ms'"/><fetch next="'http://127.0.0.2:9/x.ccxml'"/></transition>
<transition event="fetch.done"><log expr="'done'"/></transition>
<transition event="error.fetch"><log expr="event$.reason.indexOf('not allowed') &gt;= 0 ? 'refused' : 'failed'"/></transition>
</eventprocessor></ccxml>`
	d, err := in.Compile(context.Background(), srv.URL+"/doc.ccxml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, logs := runSession(t, in, d, ccxml.SessionOptions{})
	got := map[string]int{}
	for i := 0; i < 3; i++ {
		select {
		case l := <-logs:
			got[l]++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v", got)
		}
	}
	if got["done"] != 1 || got["refused"] != 1 || got["failed"] != 1 {
		t.Fatalf("outcomes %v, want one done, one refused, one failed (timeout)", got)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: maxage 0 must bypass the cache", n)
	}
}

// TestBasicHTTP sends events out with targettype basichttp and in through
// BasicHTTPHandler (CCXML 1.0 Appendix K), on loopback.
func TestBasicHTTP(t *testing.T) {
	in, _ := ccxml.New(ccxml.Config{})
	defer in.Close()
	got := make(chan url.Values, 1)
	mux := http.NewServeMux()
	mux.Handle("/ccxml/", in.BasicHTTPHandler(nil))
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got <- r.Form
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	in2, _ := ccxml.New(ccxml.Config{AllowedRoots: []string{srv.URL + "/hook"}})
	defer in2.Close()
	doc := `<ccxml version="1.0"><var name="who" expr="'bob'"/><eventprocessor>
<transition event="ccxml.loaded"><send name="'app.hello'" target="'` + srv.URL + `/hook'" targettype="'basichttp'" namelist="who"/></transition>
<transition event="send.successful"><log expr="'sent'"/></transition>
<transition event="ext.poke"><log expr="event$.eventsourcetype + ' ' + event$.color"/></transition>
</eventprocessor></ccxml>`
	d, err := in2.Compile(context.Background(), "mem.ccxml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s, logs := runSession(t, in2, d, ccxml.SessionOptions{})
	select {
	case f := <-got:
		if f.Get("name") != "app.hello" || f.Get("who") != "bob" || f.Get("sessionid") != s.ID() {
			t.Fatalf("form %v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basichttp request")
	}
	waitLog(t, logs, "sent")

	// Inbound: the handler of in (not in2) knows no such session.
	resp, err := http.PostForm(srv.URL+"/ccxml/event", url.Values{"sessionid": {s.ID()}, "name": {"ext.poke"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	srv2 := httptest.NewServer(in2.BasicHTTPHandler(nil))
	defer srv2.Close()
	cases := []struct {
		form url.Values
		code int
	}{
		{url.Values{"sessionid": {s.ID()}, "name": {"ext.poke"}, "color": {"red"}}, http.StatusNoContent},
		{url.Values{"sessionid": {s.ID()}}, http.StatusBadRequest},
		{url.Values{"sessionid": {"nope"}, "name": {"x"}}, http.StatusNotFound},
	}
	for _, c := range cases {
		resp, err := http.PostForm(srv2.URL+"/event", c.form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Fatalf("form %v: status %d, want %d", c.form, resp.StatusCode, c.code)
		}
	}
	waitLog(t, logs, "basichttp red")
	resp, err = http.Get(srv2.URL + "/event")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
}

// TestCreateSessionHTTP starts a session through the createsession processor.
func TestCreateSessionHTTP(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/ext.ccxml"
	src := `<ccxml version="1.0"><eventprocessor><transition event="ccxml.loaded"><exit/></transition></eventprocessor></ccxml>`
	if err := writeFile(path, src); err != nil {
		t.Fatal(err)
	}
	in, _ := ccxml.New(ccxml.Config{AllowedRoots: []string{dir}})
	defer in.Close()
	srv := httptest.NewServer(in.BasicHTTPHandler(nil))
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+"/createsession", url.Values{"uri": {path}, "k": {"v"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) == "" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	resp, err = http.PostForm(srv.URL+"/createsession", url.Values{"uri": {"/etc/passwd"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("outside AllowedRoots: status %d, want 400", resp.StatusCode)
	}
}
