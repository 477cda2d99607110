// Package trees builds the in-memory trees (pkg/tree) that tests of
// several kiln packages share: inodes and paths made in code, layer files
// and Debian packages merged with kiln's own layer reader and merger, and
// files read back. Only tests import it; pkg/layer's and pkg/tree's own
// tests cannot (it imports both), and use internal/testkit.
package trees
