package layer

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Error is an error of a layer: its Name and, when one is concerned, the
// entry as the layer names it. Open and Walk return only *Error, except
// for errors of the Walk callback, which are returned unchanged.
type Error struct {
	Layer string // Layer.Name(), or the path given to Open
	Entry string // raw entry name, or "" if the error concerns the whole layer
	Err   error
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return "layer " + e.Layer + ": " + e.Err.Error()
	}
	return "layer " + e.Layer + ": entry " + quoteName(e.Entry) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Causes a caller may test for with errors.Is.
var (
	// ErrUnsafePath: a name climbs above the layer root, holds a NUL byte
	// or is too long.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrDigest: data does not match the digest that names or pins it.
	ErrDigest = errors.New("digest mismatch")
	// ErrFormat: the bytes are not a layer format kiln knows.
	ErrFormat = errors.New("unrecognised format")
	// ErrTooLarge: uncompressed, a layer is over Options.MaxBytes, or
	// over RatioFloor and Options.MaxRatio times its size as stored.
	ErrTooLarge = errors.New("too large")
)

// quoteName returns s as is if it is plain printable text, else quoted,
// so that a hostile name cannot forge lines of a message.
func quoteName(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}
