// Package srs is a built-in SIPREC recording server (SRS): it accepts recording
// sessions over SIP and writes one WAV file per stream plus the latest metadata,
// for demos, tests and small deployments.
package srs
