// Package size writes byte counts for messages, the one way kiln's
// packages write them: "64 GiB", "1.5 MiB", "300 bytes".
//
// It imports only the standard library: every package may use it.
package size
