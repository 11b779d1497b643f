package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RTPEngineArgs is the configuration rtpengine runs with in the fork
// scenario (documented in perf/README.md). No config file: the packaged one
// turns kernel forwarding on, which cannot load here; --table=-1 keeps
// rtpengine in its userspace path.
func RTPEngineArgs(ip, pidfile string, threads int) []string {
	return []string{
		"--config-file=none", "--table=-1", "--interface=" + ip,
		"--listen-ng=127.0.0.1:2223", "--port-min=10000", "--port-max=65000",
		"--delete-delay=0", "--foreground", "--log-stderr", "--log-level=5",
		fmt.Sprintf("--num-threads=%d", threads), "--pidfile=" + pidfile,
	}
}

// rtpEngine runs rtpengine inside the media namespace and drives it over ng.
type rtpEngine struct {
	pair    *Pair
	cmd     *exec.Cmd
	done    chan struct{}
	log     *lockedBuffer
	dir     string
	clients []*NG
	pools   map[bool]*ngPool
	dirty   bool
	gen     int
	logMark int
	waitErr error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 8<<20 { // bound memory: keep the start, drop the rest
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openRTPEngine(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error) {
	bin, err := exec.LookPath("rtpengine")
	if err != nil {
		return nil, Skip("rtpengine is not installed (apt-get install --no-install-recommends rtpengine-daemon rtpengine-utils)")
	}
	dir, err := os.MkdirTemp("", "recforkperf-rtpengine")
	if err != nil {
		return nil, fmt.Errorf("create rtpengine dir: %w", err)
	}
	r := &rtpEngine{pair: p, dir: dir, done: make(chan struct{}), log: &lockedBuffer{}}
	args := RTPEngineArgs(p.MAddr.String(), filepath.Join(dir, "rtpengine.pid"), 2)
	env.Config(name, map[string]any{"rtpengine_args": args, "rtpengine_mode": "userspace (kernel module cannot load here)"})
	// `ip netns exec` execs rtpengine in place, so the child's PID is
	// rtpengine's own.
	r.cmd = exec.Command("ip", append([]string{"netns", "exec", p.M.Name, bin}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	// Its own process group, and killed with us if the suite dies.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startLocked(r.cmd, func(err error) { r.waitErr = err; close(r.done) }); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start rtpengine: %w", err)
	}
	for i := 0; i < 4; i++ {
		var c *NG
		if err := p.M.Do(func() (err error) { c, err = DialNG("127.0.0.1:2223"); return err }); err != nil {
			r.Close()
			return nil, err
		}
		r.clients = append(r.clients, c)
	}
	// Wait until it answers ping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		reply, err := r.clients[0].Do(pctx, map[string]any{"command": "ping"})
		cancel()
		if err == nil && reply["result"] == "pong" {
			break
		}
		select {
		case <-r.done:
			r.Close()
			return nil, fmt.Errorf("rtpengine exited at start (%v): %s", r.waitErr, tail(r.log.String(), 400))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.Close()
			return nil, fmt.Errorf("rtpengine does not answer ng ping: %v", err)
		}
	}
	return r, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (r *rtpEngine) Pids() []int {
	if r.cmd.Process == nil {
		return nil
	}
	return []int{r.cmd.Process.Pid}
}

// Forks is 2: each call's caller is subscribed to twice (to-tags rec and
// rec2), as recfork's engines fork the caller's inbound and the callee's
// outbound, which carry the same packets.
func (r *rtpEngine) Forks() int { return 2 }

// Check reports rtpengine's permanent per-stream overload: after five
// receive-queue overflows it stops reading a socket until the call ends.
func (r *rtpEngine) Check() error {
	log := r.log.String()
	if r.logMark > len(log) {
		r.logMark = 0
	}
	fresh := log[r.logMark:]
	r.logMark = len(log)
	if strings.Contains(fresh, "receive queue exceeded") {
		return errors.New("rtpengine reported 'receive queue exceeded' (overloaded sockets)")
	}
	return nil
}

// Lossy marks the calls as possibly overloaded: rtpengine's overload is
// permanent per stream, so the next Prepare sets up fresh calls.
func (r *rtpEngine) Lossy() { r.dirty = true }

// Prepare returns n calls, relaying and (fork) subscribed to the recorder
// twice.
// The forked and unforked calls are two pools that live side by side; a pool
// is reused while its size fits and no run lost packets, and set up afresh
// otherwise.
func (r *rtpEngine) Prepare(ctx context.Context, n int, fork bool) ([]uint16, error) {
	if r.dirty {
		if err := r.deleteCalls(ctx, nil); err != nil {
			return nil, err
		}
		r.pools, r.dirty = nil, false
	}
	if r.pools == nil {
		r.pools = map[bool]*ngPool{}
	}
	if pl := r.pools[fork]; pl != nil && len(pl.calls) == n {
		return pl.ports, nil
	}
	if pl := r.pools[fork]; pl != nil {
		if err := r.deleteCalls(ctx, pl.calls); err != nil {
			return nil, err
		}
		delete(r.pools, fork)
	}
	r.gen++
	pl := &ngPool{ports: make([]uint16, n), calls: make([]string, n)}
	ip := r.pair.GAddr.String()
	var wg sync.WaitGroup
	errs := make([]error, len(r.clients))
	for w, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += len(r.clients) {
				_, callee, rec := StreamPorts(i)
				caller := CallerPort(i, fork)
				cid := fmt.Sprintf("perf-%d-%d", r.gen, i)
				pl.calls[i] = cid
				if _, err := c.Do(ctx, map[string]any{"command": "offer", "call-id": cid, "from-tag": "caller",
					"sdp": AudioSDP(ip, int(caller), "sendrecv")}); err != nil {
					errs[w] = err
					return
				}
				ans, err := c.Do(ctx, map[string]any{"command": "answer", "call-id": cid, "from-tag": "caller",
					"to-tag": "callee", "sdp": AudioSDP(ip, int(callee), "sendrecv")})
				if err != nil {
					errs[w] = err
					return
				}
				sdp, _ := ans["sdp"].(string)
				port, err := SDPPort(sdp)
				if err != nil {
					errs[w] = fmt.Errorf("answer reply: %w", err)
					return
				}
				pl.ports[i] = uint16(port)
				if !fork {
					continue
				}
				for _, tag := range []string{"rec", "rec2"} {
					if _, err := c.Do(ctx, map[string]any{"command": "subscribe request", "call-id": cid,
						"from-tag": "caller", "to-tag": tag}); err != nil {
						errs[w] = err
						return
					}
					if _, err := c.Do(ctx, map[string]any{"command": "subscribe answer", "call-id": cid,
						"to-tag": tag, "sdp": AudioSDP(ip, int(rec), "recvonly")}); err != nil {
						errs[w] = err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	r.pools[fork] = pl
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("set up rtpengine calls: %w", err)
	}
	return pl.ports, nil
}

// ngPool is a set of rtpengine calls.
type ngPool struct {
	calls []string
	ports []uint16
}

// allCalls lists the calls of every pool.
func (r *rtpEngine) allCalls() []string {
	var out []string
	for _, pl := range r.pools {
		out = append(out, pl.calls...)
	}
	return out
}

// deleteCalls deletes calls (nil: every call of every pool).
func (r *rtpEngine) deleteCalls(ctx context.Context, calls []string) error {
	if calls == nil {
		calls = r.allCalls()
	}
	if len(calls) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(r.clients))
	for w, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(calls); i += len(r.clients) {
				if calls[i] == "" {
					continue
				}
				if _, err := c.Do(ctx, map[string]any{"command": "delete", "call-id": calls[i]}); err != nil && errs[w] == nil {
					errs[w] = err
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete rtpengine calls: %w", err)
	}
	return nil
}

// Close deletes the calls (rtpengine has crashed on SIGTERM with calls
// pending), stops rtpengine (SIGTERM, then SIGKILL) and removes its files.
func (r *rtpEngine) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = r.deleteCalls(ctx, nil)
	r.pools = nil
	for _, c := range r.clients {
		c.Close()
	}
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
	}
	return os.RemoveAll(r.dir)
}

// startLocked starts cmd from an OS thread that stays alive until cmd exits:
// Pdeathsig fires when the parent *thread* ends, and Go ends threads (those
// locked into a namespace, for one). exited gets cmd.Wait's error.
func startLocked(cmd *exec.Cmd, exited func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}
