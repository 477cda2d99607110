// Package repro is the one place where time and identity enter a build:
// the epoch (from the spec or SOURCE_DATE_EPOCH) and the identifiers
// (GUIDs, UUIDs, volume IDs, hash seeds) derived from content.
// Nothing in kiln calls time.Now or draws random numbers for bytes it writes.
//
// It imports nothing of kiln; every package that writes bytes may use it.
package repro
