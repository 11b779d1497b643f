package srs

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
)

// startServerWith is startServer with a recordings mode and group.
func startServerWith(t *testing.T, mode fs.FileMode, group string) (*Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	srv, err := New(Config{Listen: "127.0.0.1:0", Dir: dir, FileMode: mode, Group: group, PortRange: PortRange{Min: 42000, Max: 42999},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("run: %v", err)
		}
		srv.Close()
	})
	return srv, dir
}

var sessionIDShape = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{16}$`)

// TestStorageNamesAndModes records calls whose Call-ID and labels try to
// pick paths, under a umask that would widen the files (0) and one that
// would narrow them (077): every name is the server's, every file and
// directory has exactly the configured mode and group.
func TestStorageNamesAndModes(t *testing.T) {
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534 // root may hand files to any group; pick one it is not in
	}
	for _, tc := range []struct {
		name    string
		umask   int
		mode    fs.FileMode
		group   string
		file    fs.FileMode
		dir     fs.FileMode
		wantGID int
	}{
		{"default mode, umask 0", 0, 0, "", 0o640, 0o750, os.Getgid()},
		{"default mode, umask 077", 0o077, 0, "", 0o640, 0o750, os.Getgid()},
		{"owner only, a group", 0o022, 0o600, strconv.Itoa(gid), 0o600, 0o700, gid},
		{"group writable", 0o022, 0o660, "", 0o660, 0o770, os.Getgid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			srv, dir := startServerWith(t, tc.mode, tc.group)
			ctx := waitCtx(t)
			src := newTestSRC(t, srv.Addr().String(), "TCP") // the body is over sipgo's UDP size
			src.callID = "../../../tmp/" + t.Name() + "/x"
			labels := []string{"../../escape", "/abs/metadata"}
			res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
				multipartBody(src.sdpOffer([]string{"sendonly", "sendonly"}, labels, nil), testMetadata("complete", labels...)))
			if res.StatusCode != 200 {
				t.Fatalf("invite: %d %s", res.StatusCode, res.Reason)
			}
			if res := src.bye(ctx); res.StatusCode != 200 {
				t.Fatalf("bye: %d", res.StatusCode)
			}
			si := sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return si.State == StateEnded })
			if !sessionIDShape.MatchString(si.ID) || si.Dir != filepath.Join(dir, si.ID) {
				t.Fatalf("session id %q dir %q", si.ID, si.Dir)
			}
			want := map[string]fs.FileMode{
				si.ID: tc.dir, si.ID + "/stream0.wav": tc.file, si.ID + "/stream1.wav": tc.file,
				si.ID + "/metadata.xml": tc.file, si.ID + "/session.json": tc.file,
			}
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || path == dir {
					return err
				}
				rel, _ := filepath.Rel(dir, path)
				m, ok := want[rel]
				if !ok {
					t.Errorf("unexpected path %s", rel)
					return nil
				}
				delete(want, rel)
				fi, err := os.Lstat(path)
				if err != nil {
					return err
				}
				if fi.Mode().Perm() != m {
					t.Errorf("%s: mode %#o, want %#o", rel, fi.Mode().Perm(), m)
				}
				if g := int(fi.Sys().(*syscall.Stat_t).Gid); g != tc.wantGID {
					t.Errorf("%s: group %d, want %d", rel, g, tc.wantGID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for rel := range want {
				t.Errorf("missing %s", rel)
			}
			if si.Streams[0].Path != filepath.Join(si.Dir, "stream0.wav") || si.Streams[0].Label != "../../escape" {
				t.Fatalf("stream 0: path %q label %q", si.Streams[0].Path, si.Streams[0].Label)
			}
		})
	}
}

func TestStorageConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  fs.FileMode
		group string
		ok    bool
	}{
		{"zero is the default", 0, "", true},
		{"owner without write", 0o440, "", false},
		{"setuid bit", 0o4640, "", false},
		{"unknown group", 0o640, "no-such-group-recfork", false},
		{"numeric group", 0o640, "0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newStorage(tc.mode, tc.group)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("newStorage(%#o, %q): %v", uint32(tc.mode), tc.group, err)
			}
		})
	}
}

func TestSessionIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := newSessionID(timeNow())
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] || !sessionIDShape.MatchString(id) {
			t.Fatalf("id %q repeated or misshapen", id)
		}
		seen[id] = true
	}
}
