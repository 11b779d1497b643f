package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/recfork/recfork/controlplane"
)

// Exit codes of the admin commands, for scripts.
const (
	exitOK          = 0
	exitFailed      = 1 // the daemon refused or the operation failed
	exitUsage       = 2
	exitUnreachable = 3 // no daemon on the admin socket
	exitNotFound    = 4 // no such connection or recording
	exitPermission  = 5 // the admin socket is not this user's to use
)

const exitCodesHelp = "exit status: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 not found, 5 permission denied"

// adminClient talks to recforkd's admin API on its unix socket.
type adminClient struct {
	socket string
	http   *http.Client
}

func newAdminClient(socket string) *adminClient {
	return &adminClient{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// apiError is an error answer of the admin API.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

var errUnreachable = errors.New("daemon unreachable")

// errPermission means the admin socket exists but this user may not use it:
// reported as such, not as an absent daemon.
var errPermission = errors.New("permission denied")

func (c *adminClient) do(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://recforkd"+path, nil)
	if err != nil {
		return err
	}
	// Check who owns the socket before trusting its answers: in a
	// directory another user can write to, anyone could pose as the daemon.
	if err := controlplane.CheckAdminSocket(c.socket); err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: admin socket %s: no such file", errUnreachable, c.socket)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("%w: %v", errPermission, err)
		}
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w: admin socket %s (run as the daemon's user or root)", errPermission, c.socket)
		}
		return fmt.Errorf("%w: admin socket %s: %v", errUnreachable, c.socket, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read admin answer: %w", err)
	}
	if res.StatusCode >= 400 && res.StatusCode != http.StatusBadGateway {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return &apiError{status: res.StatusCode, msg: e.Error}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode admin answer: %w", err)
	}
	if res.StatusCode == http.StatusBadGateway {
		return &apiError{status: res.StatusCode, msg: "the recording server refused the change"}
	}
	return nil
}

// errCode maps an admin call's error to an exit code and prints it.
func errCode(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "recforkctl %s: %v\n", cmd, err)
	var ae *apiError
	switch {
	case errors.Is(err, errUnreachable):
		return exitUnreachable
	case errors.Is(err, errPermission), errors.Is(err, controlplane.ErrUnsafeAdmin):
		return exitPermission
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return exitNotFound
	case errors.As(err, &ae) && ae.status == http.StatusBadRequest:
		return exitUsage
	}
	return exitFailed
}

// adminFlags adds the flags every admin command shares.
func adminFlags(fs *flag.FlagSet) (socket *string, asJSON *bool) {
	socket = fs.String("admin", controlplane.DefaultAdminSocket(), "recforkd's admin socket (env RECFORK_ADMIN)")
	asJSON = fs.Bool("json", false, "print JSON instead of a table")
	return
}

// parseFlags parses args and prints usage on error; ok is false when the
// command should return code.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) (code int, ok bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: "+usage+"\n\n"+exitCodesHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageCode(err), false
	}
	return 0, true
}
