package controlplane

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
)

// loopbackListen says whether a listen address can only be reached from this
// host: a loopback IP or "localhost". A wildcard or any other host is not.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// requireToken wraps a state-changing handler: without a configured token
// (allowed on loopback only) it passes; with one, the request must carry
// "Authorization: Bearer <token>" (RFC 6750 §2.1), compared in constant time.
func requireToken(token string, onReject func(), h http.HandlerFunc) http.HandlerFunc {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			onReject()
			// RFC 6750 §3: the challenge names the scheme.
			w.Header().Set("WWW-Authenticate", `Bearer realm="recforkd"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// newSessionID is an unguessable CCXML session id: 128 random bits, so that a
// basichttp event cannot be aimed at a session whose id was not handed out.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}

// sessionRoots are the createsession roots in force: the configured ones, or
// the directory of the call app.
func (cfg Config) sessionRoots() []string {
	if len(cfg.SessionRoots) > 0 {
		return cfg.SessionRoots
	}
	if cfg.App == "" {
		return nil
	}
	dir, err := filepath.Abs(filepath.Dir(cfg.App))
	if err != nil {
		return nil
	}
	return []string{dir}
}

// underRoots resolves a createsession uri (a path, a file: URI or an http(s)
// URL) and says whether it lies under one of roots. Local paths are cleaned
// and their symbolic links resolved first, so neither ".." nor a link leads
// out of a root. The error never says whether a file exists.
func underRoots(uri string, roots []string) (string, error) {
	errNo := fmt.Errorf("document is not under an allowed root: %w", ErrNotAllowed)
	if len(roots) == 0 {
		return "", errNo
	}
	if strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") {
		u, err := url.Parse(uri)
		if err != nil || u.User != nil || strings.Contains(u.Path, "..") {
			return "", errNo
		}
		for _, r := range roots {
			if (strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://")) && strings.HasPrefix(uri, strings.TrimSuffix(r, "/")+"/") {
				return uri, nil
			}
		}
		return "", errNo
	}
	p := strings.TrimPrefix(uri, "file://")
	if !filepath.IsAbs(p) {
		return "", errNo
	}
	p = filepath.Clean(p)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	} else {
		return "", errNo
	}
	for _, r := range roots {
		if strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://") {
			continue
		}
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			continue
		}
		if strings.HasPrefix(p, strings.TrimSuffix(rr, "/")+"/") {
			return p, nil
		}
	}
	return "", errNo
}
