// Package verify proves a spec reproducible: it builds the image twice, in
// separate temporary folders, the second time in a varied environment
// (time zone, locale, umask, working directory, temp dir, GOMAXPROCS, and
// copies of every directory layer made in shuffled order with new mtimes
// and, unless the layer preserves host modes, the modes of a checkout
// made with umask 002), and compares the results.
//
// It runs kiln itself as a child process for each build, so that the
// environment a build sees is really different; it writes no image bytes.
//
// It imports only pkg/spec: the builds it compares are kiln processes.
package verify
