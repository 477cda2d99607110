// Package xz decodes xz files (the .xz container of XZ Utils) held in an
// io.ReaderAt, fast: it reads the file's structure from its end as
// `xz --list` does (stream footers, indexes, block headers), so it knows
// where every block starts and how large it is before it decodes a byte,
// and then decodes the blocks of a multi-block file (made by `xz -T0`,
// pixz, ...) on several goroutines ahead of the reader, handing their
// output over in order.
//
// It owns: the container (streams, stream padding, indexes, block headers
// and checks: none, CRC32, CRC64, SHA-256); its own LZMA2 decoder
// (lzma.go, lzma2.go: a range decoder on a byte slice, after
// xz-embedded's xz_dec_lzma2.c, decoding a block straight into its output
// buffer, or into a sliding window when streaming); and the x86 BCJ and
// delta filters that may come before LZMA2. Everything the file says is
// checked against everything else it says: a truncated or altered file,
// an index that disagrees with the blocks, or a block whose output fails
// its check is an error, never silent wrong output. Memory is bounded:
// dictionaries larger than MaxDict (128 MiB) are refused before anything
// is allocated, at most about workers+1 block buffers of at most 64 MiB
// each are in flight, and larger or lone blocks are decoded streaming.
//
// It does not own: encoding (kiln writes no xz), the legacy .lzma format,
// the other BCJ filters (ARM, PowerPC, ...: ErrUnsupported), or hashing
// the compressed bytes (a caller that needs their digest hashes them
// itself).
//
// It imports only internal/size; pkg/layer and pkg/initramfs use it.
package xz
