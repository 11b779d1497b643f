// Package archtest holds the dependency test that keeps recfork's import rules
// (ARCHITECTURE.md, "Packages and what each may import"): it lists every package
// of the module and fails on an import its layer may not make.
package archtest
