// Package controlplane is the core of the recforkd daemon: the SIP user agent for
// calls, connections and their media endpoints, the ccxml.Platform that carries
// out call control, bvr.record handed to siprec and the data plane, the admin API
// and metrics.
package controlplane
