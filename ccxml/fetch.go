package ccxml

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type fetchOpts struct {
	timeout time.Duration
	method  string     // "GET" (default) or "POST"
	form    url.Values // namelist, sent as query (GET) or form body (POST)
	maxAge  time.Duration
	hasAge  bool // maxAge was given (maxage attribute)
	wantAge bool
	gotAge  time.Duration // from Cache-Control: max-age
}

func checkRoot(r string) error {
	if strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://") {
		if _, err := url.Parse(r); err != nil {
			return fmt.Errorf("allowed root %q: %w", r, err)
		}
		return nil
	}
	if !filepath.IsAbs(r) {
		return fmt.Errorf("allowed root %q: want an absolute directory or an http(s) URL prefix", r)
	}
	return nil
}

// resolve resolves ref against base (a file path or URL).
func resolve(base, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", fmt.Errorf("resolve empty location")
	}
	if u, err := url.Parse(ref); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return ref, nil
	}
	if bu, err := url.Parse(base); err == nil && (bu.Scheme == "http" || bu.Scheme == "https") {
		r, err := url.Parse(ref)
		if err != nil {
			return "", fmt.Errorf("resolve %q: %w", ref, err)
		}
		return bu.ResolveReference(r).String(), nil
	}
	base = strings.TrimPrefix(base, "file://")
	if filepath.IsAbs(ref) {
		return filepath.Clean(ref), nil
	}
	return filepath.Join(filepath.Dir(base), ref), nil
}

func (in *Interpreter) allowed(loc string) bool {
	isHTTP := strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
	if len(in.cfg.AllowedRoots) == 0 {
		return !isHTTP
	}
	for _, r := range in.cfg.AllowedRoots {
		rootHTTP := strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://")
		if isHTTP != rootHTTP {
			continue
		}
		if isHTTP {
			if strings.HasPrefix(loc, r) {
				return true
			}
			continue
		}
		abs, err := filepath.Abs(loc)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(filepath.Clean(r), abs)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

func (in *Interpreter) fetch(ctx context.Context, loc string, o fetchOpts) ([]byte, error) {
	return in.fetchWithAge(ctx, loc, &o)
}

// fetchWithAge reads a document or script from a file or over HTTP(S),
// bounded by o.timeout and MaxDocumentSize, and only within AllowedRoots.
func (in *Interpreter) fetchWithAge(ctx context.Context, loc string, o *fetchOpts) ([]byte, error) {
	loc = strings.TrimPrefix(loc, "file://")
	if !in.allowed(loc) {
		return nil, fmt.Errorf("fetch %s: %w", loc, ErrNotAllowed)
	}
	limit := in.cfg.MaxDocumentSize
	if !strings.HasPrefix(loc, "http://") && !strings.HasPrefix(loc, "https://") {
		f, err := os.Open(loc)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", loc, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, limit+1))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", loc, err)
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("fetch %s: %w", loc, ErrTooLarge)
		}
		return b, nil
	}
	timeout := o.timeout
	if timeout <= 0 {
		timeout = in.cfg.FetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var req *http.Request
	var err error
	if o.method == "POST" {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, loc, strings.NewReader(o.form.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := loc
		if len(o.form) > 0 {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + o.form.Encode()
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	if o.hasAge {
		req.Header.Set("Cache-Control", "max-age="+strconv.Itoa(int(o.maxAge/time.Second)))
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("fetch %s: http status %s", loc, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("fetch %s: %w", loc, ErrTooLarge)
	}
	if o.wantAge {
		for _, d := range strings.Split(resp.Header.Get("Cache-Control"), ",") {
			d = strings.TrimSpace(d)
			if v, ok := strings.CutPrefix(d, "max-age="); ok {
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					o.gotAge = time.Duration(n) * time.Second
				}
			}
			if d == "no-store" || d == "no-cache" {
				o.gotAge = 0
				break
			}
		}
	}
	return b, nil
}
