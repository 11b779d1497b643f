// Package testenv holds test-only helpers: the one gate for privileged tests and
// throw-away network namespaces and veth pairs that are always cleaned up. It is
// imported only from tests and imports only the standard library and x/sys.
package testenv
