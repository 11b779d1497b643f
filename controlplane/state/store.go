package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recfork/recfork/siprec"
)

// ErrBadConfig reports a Config that cannot work.
var ErrBadConfig = errors.New("bad state store config")

// Config configures a Store.
type Config struct {
	// Addr is the Redis server: "host:port", or a unix socket path (starting
	// with '/' or "unix:"). Required.
	Addr string
	// Password and DB are Redis's AUTH password and database; zero values
	// mean none and 0.
	Password string
	DB       int
	// Node names this node in the keys; required, unique in the cluster.
	Node string
	// Heartbeat is how often the node's heartbeat is refreshed; zero means 1 s.
	Heartbeat time.Duration
	// HeartbeatTTL is how long a heartbeat lives: a node silent that long is
	// dead; zero means 3 Heartbeats.
	HeartbeatTTL time.Duration
	// TTL bounds how long a node's recordings outlive its last heartbeat,
	// so a cluster that lost every node leaves nothing forever; zero means
	// 10 min. It must exceed HeartbeatTTL, or a standby could find nothing.
	TTL time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Store is one node's view of the shared state.
type Store struct {
	cfg Config
	log *slog.Logger
	rdb *redis.Client
}

func nodesKey() string                    { return "recfork:nodes" }
func aliveKey(node string) string         { return "recfork:node:" + node + ":alive" }
func recsKey(node string) string          { return "recfork:node:" + node + ":recordings" }
func claimKey(node string) string         { return "recfork:node:" + node + ":claim" }
func validNode(node string) bool          { return node != "" && !strings.ContainsAny(node, ": \t\r\n{}") }
func (s *Store) Node() string             { return s.cfg.Node }
func (s *Store) Heartbeat() time.Duration { return s.cfg.Heartbeat }

// New connects to Redis and checks that it answers.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("state store: no redis address: %w", ErrBadConfig)
	}
	if !validNode(cfg.Node) {
		return nil, fmt.Errorf("state store: node id %q (non-empty, no ':', '{', '}' or spaces): %w", cfg.Node, ErrBadConfig)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.HeartbeatTTL == 0 {
		cfg.HeartbeatTTL = 3 * cfg.Heartbeat
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.Heartbeat < 0 || cfg.HeartbeatTTL <= cfg.Heartbeat || cfg.TTL <= cfg.HeartbeatTTL {
		return nil, fmt.Errorf("state store: want 0 < heartbeat (%s) < heartbeat ttl (%s) < ttl (%s): %w",
			cfg.Heartbeat, cfg.HeartbeatTTL, cfg.TTL, ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opt := &redis.Options{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1}
	if p, ok := strings.CutPrefix(cfg.Addr, "unix:"); ok || strings.HasPrefix(cfg.Addr, "/") {
		if ok {
			opt.Addr = p
		}
		opt.Network = "unix"
	}
	s := &Store{cfg: cfg, log: cfg.Logger, rdb: redis.NewClient(opt)}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("state store: ping redis %s: %w", cfg.Addr, err)
	}
	return s, nil
}

// Close releases the connection; it leaves the keys (Leave removes them).
func (s *Store) Close() error { return s.rdb.Close() }

// Beat refreshes this node's heartbeat and the expiry of its recordings.
func (s *Store) Beat(ctx context.Context) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, nodesKey(), s.cfg.Node)
		p.Set(ctx, aliveKey(s.cfg.Node), time.Now().UTC().Format(time.RFC3339Nano), s.cfg.HeartbeatTTL)
		p.Expire(ctx, recsKey(s.cfg.Node), s.cfg.TTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state heartbeat: %w", err)
	}
	return nil
}

// Put writes (or replaces) one recording of this node.
func (s *Store) Put(ctx context.Context, snap siprec.Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("state put %s: %w", snap.ConnectionID, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, nodesKey(), s.cfg.Node)
		p.HSet(ctx, recsKey(s.cfg.Node), snap.ConnectionID, b)
		p.Expire(ctx, recsKey(s.cfg.Node), s.cfg.TTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state put %s: %w", snap.ConnectionID, err)
	}
	return nil
}

// Delete removes one recording of this node (it ended).
func (s *Store) Delete(ctx context.Context, connectionID string) error {
	if err := s.rdb.HDel(ctx, recsKey(s.cfg.Node), connectionID).Err(); err != nil {
		return fmt.Errorf("state delete %s: %w", connectionID, err)
	}
	return nil
}

// Leave removes this node from the cluster after a clean shutdown: nothing
// is left for a standby to take over.
func (s *Store) Leave(ctx context.Context) error {
	return s.forget(ctx, s.cfg.Node)
}

func (s *Store) forget(ctx context.Context, node string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, recsKey(node), aliveKey(node))
		p.SRem(ctx, nodesKey(), node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state forget node %s: %w", node, err)
	}
	return nil
}

// Recordings returns the recordings a node left, in no order. Entries that
// do not decode are skipped and logged: a bad entry must not hide the rest.
func (s *Store) Recordings(ctx context.Context, node string) ([]siprec.Snapshot, error) {
	m, err := s.rdb.HGetAll(ctx, recsKey(node)).Result()
	if err != nil {
		return nil, fmt.Errorf("state recordings of %s: %w", node, err)
	}
	out := make([]siprec.Snapshot, 0, len(m))
	for id, v := range m {
		snap, err := Decode([]byte(v))
		if err != nil {
			s.log.Warn("state entry skipped", "node", node, "connection_id", id, "err", err)
			continue
		}
		out = append(out, snap)
	}
	return out, nil
}

// Decode reads one stored Snapshot.
func Decode(b []byte) (siprec.Snapshot, error) {
	var snap siprec.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return snap, fmt.Errorf("decode snapshot: %w", err)
	}
	if snap.ConnectionID == "" || snap.CallID == "" || snap.LocalTag == "" || snap.RemoteTag == "" || snap.RemoteTarget == "" {
		return snap, fmt.Errorf("decode snapshot: %w", siprec.ErrBadSnapshot)
	}
	return snap, nil
}

// DeadNodes lists the nodes other than this one whose heartbeat expired.
func (s *Store) DeadNodes(ctx context.Context) ([]string, error) {
	nodes, err := s.rdb.SMembers(ctx, nodesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("state nodes: %w", err)
	}
	var dead []string
	for _, n := range nodes {
		if n == s.cfg.Node {
			continue
		}
		alive, err := s.rdb.Exists(ctx, aliveKey(n)).Result()
		if err != nil {
			return nil, fmt.Errorf("state heartbeat of %s: %w", n, err)
		}
		if alive == 0 {
			dead = append(dead, n)
		}
	}
	return dead, nil
}

// Claim makes this node the one that takes a dead node over; false when
// another standby claimed it first. The claim expires with TTL, so a standby
// that dies while taking over leaves the node to the next.
func (s *Store) Claim(ctx context.Context, node string) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, claimKey(node), s.cfg.Node, s.cfg.TTL).Result()
	if err != nil {
		return false, fmt.Errorf("state claim %s: %w", node, err)
	}
	return ok, nil
}

// Release removes a dead node once taken over: its recordings, its
// membership and the claim.
func (s *Store) Release(ctx context.Context, node string) error {
	if err := s.forget(ctx, node); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, claimKey(node)).Err(); err != nil {
		return fmt.Errorf("state release claim %s: %w", node, err)
	}
	return nil
}
