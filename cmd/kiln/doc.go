// Command kiln assembles bootable, byte-reproducible disk images from
// root-filesystem layers, offline and without root.
//
// One file per command (build.go, inspect.go, run.go, verify.go, diff.go,
// convert.go, cache.go, version.go), each a cobra command with a small
// options struct; main.go maps error classes to the exit codes the README
// documents and turns SIGINT and SIGTERM into a cancelled context. The
// commands may import any package of kiln; the library packages never
// import a command.
package main
