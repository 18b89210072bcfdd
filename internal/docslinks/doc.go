// Package docslinks holds a test, and nothing else: every relative link in
// README.md and docs/*.md resolves to a file or directory of the
// repository (and a #fragment to a heading of the target page), no page
// links outside the repository, and every docs/*.md named in the code, the
// Makefile or the pages exists.
package docslinks
