// Package perf is recfork's performance suite: load generators, scenarios and the
// report writer. Production code never imports it.
package perf
