// Package dataplane defines the media-plane contract of recfork: the Engine that
// owns RTP endpoints, relays media between joined endpoints and forks each recorded
// direction's RTP and RTCP to a recording server. It is the contract layer between
// the control plane (controlplane, siprec) and the engines that implement it
// (dataplane/userspace, dataplane/ebpf); it imports only the standard library.
//
// Directions are named from the platform's point of view: Inbound is audio from
// the remote party to the platform, Outbound is audio from the platform to the
// remote party. A fork of a direction copies exactly the packets that travel that
// way through one endpoint.
package dataplane
