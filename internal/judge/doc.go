// Package judge runs the real tools that judge kiln's output in tests:
// e2fsck, debugfs, fsck.vfat, mtools, sgdisk, sfdisk. Only tests import it.
//
// A missing tool skips the test on a developer's machine, but fails it
// under CI (CI=true) or with KILN_REQUIRE_JUDGES=1: `make test` installs
// every judge, so a skip there would hide a failure.
//
// It imports only internal/testkit (for the gate that turns a missing judge
// into a failure under CI) and the standard library; no kiln package that
// it judges, so a judge never agrees with kiln by sharing its code.
package judge
