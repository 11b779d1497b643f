// Package ccxml is recfork's CCXML 1.0 interpreter: it parses and validates
// documents, runs one session per call with its own ECMAScript runtime and event
// queue, and talks to the outside world only through its Platform interface.
package ccxml
