//go:build linux && !amd64 && !arm64

package main

// sysFinitModule is unknown here: modules cannot be loaded.
const sysFinitModule = 0
