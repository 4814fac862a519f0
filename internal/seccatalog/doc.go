// Package seccatalog keeps docs/security.md, the security catalog, in step
// with the code. It holds only a test, which reads the catalog and the
// repository's Go source as text: every requirement id a comment or a test
// name cites must have a row, every test a row lists must exist, every
// test named after a row must be listed in it, and every fuzz target must
// be in the fuzz table. It imports none of the packages it reads, so it
// never needs to change when they do.
package seccatalog
