// Package dataplanetest owns the engine-agnostic contract test suite of
// dataplane.Engine: every engine (dataplane/userspace on loopback,
// dataplane/ebpf inside network namespaces) runs the same Run(t, Harness) so
// relays, joins, forks, mutes and counters mean the same thing everywhere.
//
// It is a test helper: only _test.go files import it. It opens real UDP sockets
// for the remote parties and the recorder through the Harness, so it never
// assumes loopback; the harness decides where those sockets live.
package dataplanetest
