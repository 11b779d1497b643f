// Package testcert makes a throw-away certificate authority and leaf
// certificates at test time, for the tests of SIP over TLS. It is a test
// helper (internal layer): nothing in the daemon imports it.
package testcert
