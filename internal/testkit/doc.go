// Package testkit holds small helpers that the tests of several kiln
// packages share: file contents held in memory, error checks, sparse image
// files, the Debian packages the boot tests use, and booting an image with
// pkg/qemu (kiln run's own code). The tools that judge kiln's output are
// in internal/judge; trees built in memory and merged .debs are in
// internal/testkit/trees.
//
// It imports only the standard library and pkg/qemu, so that any test in
// the module may use it, pkg/layer's and pkg/tree's included. Only tests
// import it.
//
// Skips: what the boot tests need (QEMU, OVMF, Debian's packages, the
// tools that make their initramfs) skips a test on a developer's machine
// but fails it under CI (env CI set), where `make test` has provided
// everything; see Missing. internal/judge.Need, for the judges, also fails
// with KILN_REQUIRE_JUDGES set.
package testkit
