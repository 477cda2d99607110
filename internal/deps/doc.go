// Package deps holds, in one table, which of kiln's packages each package
// may import, and the test that enforces it (TestImportDirections): data
// flows one way, spec → layer → tree → filesystem writers → partition
// layout → bootloader → image format, and a stage never reaches back. In
// particular no filesystem writer or bootloader imports pkg/layer (they
// take a merged tree, whatever it was read from), no library package
// imports pkg/build or a command, and pkg/tree, pkg/repro and pkg/imgfmt
// stand on their own.
//
// To add a package, add its row; to add an import, add it to the row and
// say in the commit why the direction is right.
package deps
