package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/recfork/recfork/controlplane/state"
	"github.com/recfork/recfork/siprec"
)

// Shared recording state and the standby (controlplane/state/doc.go says
// what is kept and why). With Config.StateRedis set, the daemon writes each
// recording's siprec.Snapshot to Redis when a bvr.record event reports a
// change, removes it when the connection ends, and keeps a heartbeat. With
// Config.Standby also set, it watches the other nodes' heartbeats and, for a
// node whose heartbeat expired, ends each of its recordings at the SRS with
// a BYE in the stored dialog (siprec.Client.EndSnapshot).

// snapshotter is what the shared state needs of the recorder; the siprec
// client has it.
type snapshotter interface {
	Snapshot(connectionID string) (siprec.Snapshot, bool)
	EndSnapshot(ctx context.Context, snap siprec.Snapshot, reason string) error
}

// stateSync owns the store, the writer and the heartbeat goroutines.
type stateSync struct {
	store *state.Store
	mu    sync.Mutex
	dirty map[string]bool // connection ids to write (or delete) again
	kick  chan struct{}
	stop  context.CancelFunc
	wg    sync.WaitGroup
	// takenOver counts the recordings of dead nodes this standby ended.
	takenOver int
}

// DefaultNodeID is the node id used when none is configured: the host name
// and the SIP port, unique per daemon on a host.
func DefaultNodeID(sipAddr string) string {
	h, _ := os.Hostname()
	if h == "" {
		h = "recforkd"
	}
	if _, port, err := net.SplitHostPort(sipAddr); err == nil {
		return h + "-" + port
	}
	return h
}

// startState connects the store when configured; called by New once SIP is
// served.
func (d *Daemon) startState() error {
	if d.cfg.StateRedis == "" {
		return nil
	}
	node := d.cfg.NodeID
	if node == "" {
		node = DefaultNodeID(d.sipAddr.String())
	}
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	st, err := state.New(ctx, state.Config{Addr: d.cfg.StateRedis, Node: node, Heartbeat: d.cfg.StateHeartbeat,
		Logger: d.log.With("component", "state")})
	if err != nil {
		return err
	}
	if err := st.Beat(ctx); err != nil {
		st.Close()
		return err
	}
	ss := &stateSync{store: st, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
	sctx, stop := context.WithCancel(context.Background())
	ss.stop = stop
	d.state = ss
	ss.wg.Add(2)
	go func() { defer ss.wg.Done(); d.writeState(sctx) }()
	go func() { defer ss.wg.Done(); d.beat(sctx) }()
	d.log.Info("shared recording state on", "redis", d.cfg.StateRedis, "node", node, "standby", d.cfg.Standby)
	return nil
}

// stateChanged marks a connection's recording for writing; the writer takes
// the snapshot when it runs, so bursts of changes cost one write.
func (d *Daemon) stateChanged(connectionID string) {
	ss := d.state
	if ss == nil {
		return
	}
	ss.mu.Lock()
	ss.dirty[connectionID] = true
	ss.mu.Unlock()
	select {
	case ss.kick <- struct{}{}:
	default:
	}
}

func (d *Daemon) writeState(ctx context.Context) {
	ss := d.state
	for {
		select {
		case <-ss.kick:
		case <-ctx.Done():
			d.flushState(context.Background())
			return
		}
		d.flushState(ctx)
	}
}

// flushState writes every dirty entry: the snapshot while the recording is
// established, a delete once it is not (ended, or its connection is gone).
func (d *Daemon) flushState(ctx context.Context) {
	ss := d.state
	ss.mu.Lock()
	ids := ss.dirty
	ss.dirty = map[string]bool{}
	ss.mu.Unlock()
	var snaps snapshotter
	if rp := d.recorder.Load(); rp != nil {
		snaps, _ = (*rp).(snapshotter)
	}
	for id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		snap, ok := siprec.Snapshot{}, false
		if snaps != nil {
			if _, live := d.connection(id); live {
				snap, ok = snaps.Snapshot(id)
			}
		}
		if ok {
			err = ss.store.Put(wctx, snap)
		} else {
			err = ss.store.Delete(wctx, id)
		}
		cancel()
		if err != nil {
			d.metrics.limited.WithLabelValues("state_write_failed").Inc()
			d.log.Warn("shared state write", "connection_id", id, "err", err)
		}
	}
}

func (d *Daemon) connection(id string) (*Connection, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.conns[id]
	return c, ok
}

// beat refreshes the heartbeat and, on a standby, takes dead nodes over.
func (d *Daemon) beat(ctx context.Context) {
	ss := d.state
	t := time.NewTicker(ss.store.Heartbeat())
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := ss.store.Beat(bctx); err != nil {
			d.log.Warn("shared state heartbeat", "err", err)
		}
		cancel()
		if d.cfg.Standby {
			d.takeOverDead(ctx)
		}
	}
}

// takeOverDead ends, at their SRSs, the recordings of every node whose
// heartbeat expired and that this standby claims. The media of those calls
// died with the node; what the SRS gets is a proper end of the recording.
func (d *Daemon) takeOverDead(ctx context.Context) {
	ss := d.state
	var snaps snapshotter
	if rp := d.recorder.Load(); rp != nil {
		snaps, _ = (*rp).(snapshotter)
	}
	if snaps == nil {
		return
	}
	dead, err := ss.store.DeadNodes(ctx)
	if err != nil {
		d.log.Warn("shared state: list nodes", "err", err)
		return
	}
	for _, node := range dead {
		ok, err := ss.store.Claim(ctx, node)
		if err != nil || !ok {
			continue
		}
		recs, err := ss.store.Recordings(ctx, node)
		if err != nil {
			d.log.Warn("shared state: recordings of a dead node", "node", node, "err", err)
			continue
		}
		d.log.Info("taking over a dead node", "node", node, "recordings", len(recs))
		for _, snap := range recs {
			err := snaps.EndSnapshot(ctx, snap, "recording node "+node+" failed")
			if err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("end a dead node's recording", "node", node, "connection_id", snap.ConnectionID,
					"recording_call_id", snap.CallID, "metadata_session_id", snap.MetadataSessionID, "err", err)
				continue
			}
			ss.mu.Lock()
			ss.takenOver++
			ss.mu.Unlock()
			d.log.Info("ended a dead node's recording at the srs", "node", node, "connection_id", snap.ConnectionID,
				"recording_call_id", snap.CallID, "metadata_session_id", snap.MetadataSessionID, "srs", snap.Active)
		}
		if err := ss.store.Release(ctx, node); err != nil {
			d.log.Warn("shared state: release a dead node", "node", node, "err", err)
		}
	}
}

// stopState writes what is pending, leaves the cluster (a clean stop leaves
// nothing to take over) and closes the store; called by Close after the
// calls have ended.
func (d *Daemon) stopState() error {
	ss := d.state
	if ss == nil {
		return nil
	}
	ss.stop()
	ss.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := ss.store.Leave(ctx)
	if cerr := ss.store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close state store: %w", cerr)
	}
	return err
}

// StateInfo is the shared-state part of the admin status.
type StateInfo struct {
	Node      string `json:"node"`
	Standby   bool   `json:"standby"`
	TakenOver int    `json:"taken_over"`
}

// StateInfo reports the shared state, nil when it is off.
func (d *Daemon) StateInfo() *StateInfo {
	ss := d.state
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return &StateInfo{Node: ss.store.Node(), Standby: d.cfg.Standby, TakenOver: ss.takenOver}
}
