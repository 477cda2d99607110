//go:build !linux

package layer

import "errors"

func openDir(path string, o Options) ([]Layer, error) {
	return nil, &Error{Layer: path, Err: errors.New("directory layers are supported on Linux only")}
}
