package ccxml

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// BasicHTTPHandler serves the basichttp event I/O processor of CCXML 1.0
// Appendix K for this interpreter's sessions, for the daemon to mount on its
// HTTP listener:
//
//   - POST .../createsession with "uri" (a document within AllowedRoots) and
//     further parameters starts a session (session.startupmode 'external',
//     the parameters in session.values) on platform p; the answer is 200
//     with the new session id as text/plain.
//   - any other POST with "sessionid" and "name" (and optionally
//     "eventsource") becomes an event in that session with the remaining
//     parameters as fields, eventsourcetype 'basichttp'; the answer is 204.
//
// Bad requests get 400, an unknown session 404, other methods 405.
func (in *Interpreter) BasicHTTPHandler(p Platform) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "basichttp accepts POST only", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "parse form: "+err.Error(), http.StatusBadRequest)
			return
		}
		fields := make(map[string]any, len(r.Form))
		for k, v := range r.Form {
			if len(v) == 1 {
				fields[k] = v[0]
			} else {
				vs := make([]any, len(v))
				for i, x := range v {
					vs[i] = x
				}
				fields[k] = vs
			}
		}
		if strings.HasSuffix(r.URL.Path, "/createsession") {
			uri := r.Form.Get("uri")
			if uri == "" {
				http.Error(w, "createsession needs uri", http.StatusBadRequest)
				return
			}
			delete(fields, "uri")
			doc, err := in.Load(r.Context(), uri)
			if err != nil {
				http.Error(w, fmt.Sprintf("createsession: %v", err), http.StatusBadRequest)
				return
			}
			s, err := in.NewSession(doc, p, SessionOptions{StartupMode: StartupExternal, Values: fields})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if !in.spawn(in.ctx, func(ctx context.Context) { _ = s.Run(ctx) }) {
				in.unregister(s)
				http.Error(w, "interpreter closed", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, s.ID())
			return
		}
		id, name := r.Form.Get("sessionid"), r.Form.Get("name")
		if id == "" || name == "" {
			http.Error(w, "basichttp needs sessionid and name", http.StatusBadRequest)
			return
		}
		s, ok := in.Session(id)
		if !ok {
			http.Error(w, "no session "+id, http.StatusNotFound)
			return
		}
		delete(fields, "sessionid")
		delete(fields, "name")
		fields["eventsourcetype"] = "basichttp"
		if _, ok := fields["eventsource"]; !ok {
			fields["eventsource"] = r.RemoteAddr
		}
		if err := s.Post(Event{Name: name, Fields: fields}); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
