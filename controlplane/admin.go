package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
)

// The admin API: JSON over HTTP on a unix socket (mode 0600). Paths:
//
//	GET  /v1/status                        StatusInfo
//	GET  /v1/calls                         []CallInfo (connections grouped by CCXML session)
//	GET  /v1/connections                   []ConnectionInfo
//	GET  /v1/recordings                    []RecordingInfo
//	POST /v1/recordings/{conn}/{action}    RecordResult; action mute|unmute|stop,
//	                                       query direction=inbound|outbound (default both)
//	GET  /v1/stats                         dataplane.EngineStats
//	GET  /v1/sessions                      []SessionInfo
//	GET  /v1/drain                         DrainInfo
//	POST /v1/drain, POST /v1/undrain       DrainInfo (drain.go)
//
// Errors are {"error": "..."} with a 4xx/5xx status.

// StatusInfo is the daemon's overview.
type StatusInfo struct {
	Version     string    `json:"version"`
	Started     time.Time `json:"started"`
	SIP         string    `json:"sip"`
	MediaIP     string    `json:"media_ip"`
	Engine      string    `json:"engine"`
	SRS         string    `json:"srs"`
	App         string    `json:"app"`
	Calls       int       `json:"calls"`
	Connections int       `json:"connections"`
	Recordings  int       `json:"recordings"`
	Sessions    int       `json:"sessions"`
	// Draining is set while new calls are refused (drain.go); Calls and
	// Recordings are then what is left to end.
	Draining   bool      `json:"draining"`
	DrainSince time.Time `json:"drain_since,omitzero"`
	// State is the shared recording state (standby.go), absent when off.
	State *StateInfo `json:"state,omitempty"`
	// SRSs is the health of every SRS the SIPREC client knows.
	SRSs []SRSInfo `json:"srs_health"`
	dataplane.EngineStats
}

// CallInfo is one call: a CCXML session and its connections.
type CallInfo struct {
	SessionID   string           `json:"session_id"`
	Connections []ConnectionInfo `json:"connections"`
}

// StreamInfo is one recorded direction with its data-plane counters.
type StreamInfo struct {
	Direction string `json:"direction"`
	Label     string `json:"label"`
	Mode      string `json:"mode"`
	Source    string `json:"source,omitempty"`
	Recorder  string `json:"recorder,omitempty"`
	Paused    bool   `json:"paused,omitempty"`
	// Path is which path makes the copies (kernel or userspace) and
	// PathReason why not the kernel (admin_paths.go).
	Path       string `json:"path,omitempty"`
	PathReason string `json:"path_reason,omitempty"`
	dataplane.ForkStats
}

// RecordingInfo is one connection's recording session.
type RecordingInfo struct {
	ConnectionID string       `json:"connection_id"`
	SRS          string       `json:"srs"`
	Active       string       `json:"active_srs,omitempty"`
	Transport    string       `json:"transport,omitempty"`
	Remote       string       `json:"remote,omitempty"`
	Failovers    int          `json:"failovers,omitempty"`
	State        string       `json:"state"`
	Inbound      string       `json:"inbound"`
	Outbound     string       `json:"outbound"`
	CallID       string       `json:"call_id"`
	Since        time.Time    `json:"since,omitzero"`
	Streams      []StreamInfo `json:"streams"`
}

// RecordResult is the outcome of a mute, unmute or stop: the bvr.record event
// the request resolved with (the document received the same one).
type RecordResult struct {
	Event        string `json:"event"`
	ConnectionID string `json:"connection_id"`
	Inbound      string `json:"inbound"`
	Outbound     string `json:"outbound"`
	Operation    string `json:"operation,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// SessionInfo is one CCXML session.
type SessionInfo struct {
	ID          string    `json:"id"`
	URI         string    `json:"uri"`
	StartupMode string    `json:"startup_mode"`
	State       string    `json:"state,omitempty"`
	Started     time.Time `json:"started"`
	Connections []string  `json:"connections"`
}

// adminInfo is what the admin API reports beyond the daemon's own state.
type adminInfo struct {
	version, srs, app string
	started           time.Time
	sessions          func() []SessionInfo
}

// Recordings returns every recording with its per-stream counters.
func (d *Daemon) Recordings() []RecordingInfo {
	rp := d.recorder.Load()
	if rp == nil {
		return []RecordingInfo{}
	}
	sts := (*rp).Recordings()
	out := make([]RecordingInfo, 0, len(sts))
	for _, st := range sts {
		ri := RecordingInfo{ConnectionID: st.ConnectionID, SRS: st.SRS, State: string(st.State),
			Inbound: string(st.Inbound), Outbound: string(st.Outbound), CallID: st.CallID, Since: st.Since,
			Streams: []StreamInfo{}, Active: st.Active, Transport: st.Transport, Failovers: st.Failovers}
		if st.Remote.IsValid() {
			ri.Remote = st.Remote.String()
		}
		var ep dataplane.EndpointID
		if c, err := d.Connection(st.ConnectionID); err == nil {
			ep = c.Endpoint()
		}
		for _, s := range st.Streams {
			si := StreamInfo{Direction: s.Direction.String(), Label: s.Label, Mode: string(s.Mode), Paused: s.Paused}
			if s.SourceLocal.IsValid() {
				si.Source = s.SourceLocal.String()
			}
			if s.Recorder.IsValid() {
				si.Recorder = s.Recorder.String()
			}
			if ep != 0 {
				if fs, err := d.engine.ForkStats(ep, s.Direction); err == nil {
					si.ForkStats = fs
				}
				si.Path, si.PathReason = d.forkPath(ep, s.Direction)
			}
			ri.Streams = append(ri.Streams, si)
		}
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ConnectionID < out[j].ConnectionID })
	return out
}

// Calls groups the live connections by their CCXML session.
func (d *Daemon) Calls() []CallInfo {
	by := map[string]*CallInfo{}
	var order []string
	for _, ci := range d.Connections() {
		key := ci.SessionID
		if key == "" {
			key = "-" + ci.ID
		}
		if by[key] == nil {
			by[key] = &CallInfo{SessionID: ci.SessionID}
			order = append(order, key)
		}
		by[key].Connections = append(by[key].Connections, ci)
	}
	out := make([]CallInfo, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	return out
}

// serveAdmin serves the admin API on a unix socket until ctx ends.
func (d *Daemon) serveAdmin(ctx context.Context, path string, info adminInfo) (func(), error) {
	if path == "" || path == "-" {
		return func() {}, nil
	}
	// The directory must be ours (and is made 0700 when missing), or a
	// socket another user placed could answer in our name.
	if err := CheckAdminDir(filepath.Dir(path), true); err != nil {
		return nil, err
	}
	// A stale socket from a previous run would make Listen fail; remove it
	// only if nothing answers on it.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another daemon is listening", path)
	}
	_ = os.Remove(path)
	// Bind in a private directory (0700) beside the target, make the socket
	// 0600, then move it into place: it is never reachable with wider
	// permissions, and the process umask is left alone.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".recforkd-admin-")
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", tmpPath)
	if err != nil {
		return nil, fmt.Errorf("listen admin socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket %s: %w", path, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("place admin socket %s: %w", path, err)
	}
	srv := &http.Server{Handler: d.adminHandler(info), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	d.log.Info("admin api listening", "socket", path)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		<-done
		_ = os.Remove(path)
	}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (d *Daemon) adminHandler(info adminInfo) http.Handler {
	mux := http.NewServeMux()
	sessions := func() []SessionInfo {
		if info.sessions == nil {
			return []SessionInfo{}
		}
		return info.sessions()
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := StatusInfo{Version: info.version, Started: info.started, SIP: d.sipAddr.String(),
			MediaIP: d.cfg.MediaIP.String(), Engine: d.engine.Name(), SRS: info.srs, App: info.app,
			Calls: len(d.Calls()), Connections: len(d.Connections()), Recordings: len(d.Recordings()),
			Sessions: len(sessions()), SRSs: d.SRSHealth(), EngineStats: d.engine.Stats()}
		di := d.DrainInfo()
		st.Draining, st.DrainSince = di.Draining, di.Since
		st.State = d.StateInfo()
		writeJSON(w, 200, st)
	})
	mux.HandleFunc("GET /v1/calls", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Calls()) })
	mux.HandleFunc("GET /v1/connections", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Connections()) })
	mux.HandleFunc("GET /v1/recordings", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Recordings()) })
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.engine.Stats()) })
	mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, sessions()) })
	mux.HandleFunc("GET /v1/drain", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.DrainInfo()) })
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) { d.Drain(); writeJSON(w, 200, d.DrainInfo()) })
	mux.HandleFunc("POST /v1/undrain", func(w http.ResponseWriter, r *http.Request) { d.Undrain(); writeJSON(w, 200, d.DrainInfo()) })
	mux.HandleFunc("POST /v1/recordings/{conn}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var dir dataplane.Direction
		switch r.URL.Query().Get("direction") {
		case "", "both":
		case "inbound":
			dir = dataplane.Inbound
		case "outbound":
			dir = dataplane.Outbound
		default:
			writeErr(w, 400, fmt.Errorf("direction %q: want inbound, outbound or both", r.URL.Query().Get("direction")))
			return
		}
		action := r.PathValue("action")
		if action != "mute" && action != "unmute" && action != "stop" {
			writeErr(w, 400, fmt.Errorf("action %q: want mute, unmute or stop", action))
			return
		}
		ev, err := d.RecordControl(r.Context(), r.PathValue("conn"), action, dir)
		switch {
		case errors.Is(err, ErrNoConnection), errors.Is(err, ErrNoRecording):
			writeErr(w, 404, err)
			return
		case err != nil:
			writeErr(w, 500, err)
			return
		}
		res := RecordResult{Event: ev.Name, ConnectionID: ev.ConnectionID, Inbound: string(ev.Inbound),
			Outbound: string(ev.Outbound), Operation: ev.Operation, Reason: ev.Reason}
		code := 200
		if ev.Name == siprec.EventError {
			code = 502
		}
		writeJSON(w, code, res)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 404, fmt.Errorf("no such admin path %s %s", r.Method, strings.TrimSpace(r.URL.Path)))
	})
	return mux
}

// CheckAdminDir checks that dir may hold an admin socket: a directory owned by
// this user (or root) that no other user can write to. With create, a missing
// directory is made 0700 first. The daemon calls it before binding and
// recforkctl before connecting, so neither trusts a socket another user
// could have placed.
func CheckAdminDir(dir string, create bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) && create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create admin directory %s: %w", dir, err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("admin directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("admin directory %s: not a directory: %w", dir, ErrUnsafeAdmin)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := uint32(os.Geteuid())
	if st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("admin directory %s is owned by uid %d, not %d: %w", dir, st.Uid, uid, ErrUnsafeAdmin)
	}
	// A shared sticky directory (/tmp, /run for root) is safe to bind in only
	// when it is root's: the sticky bit stops others from replacing our name.
	if fi.Mode().Perm()&0o022 != 0 && !(st.Uid == 0 && fi.Mode()&os.ModeSticky != 0) {
		return fmt.Errorf("admin directory %s is writable by others (%v): %w", dir, fi.Mode().Perm(), ErrUnsafeAdmin)
	}
	return nil
}

// CheckAdminSocket checks, before talking to it, that the socket at path is
// a socket owned by this user or root, in a directory CheckAdminDir accepts.
func CheckAdminSocket(path string) error {
	if err := CheckAdminDir(filepath.Dir(path), false); err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("admin socket %s: not a socket: %w", path, ErrUnsafeAdmin)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 && uid != 0 {
			return fmt.Errorf("admin socket %s is owned by uid %d, not %d or root: %w", path, st.Uid, uid, ErrUnsafeAdmin)
		}
	}
	return nil
}
