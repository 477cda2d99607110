package xz

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"

	"github.com/ulikunitz/xz/lzma"
)

func dictCap(dict, size int64) int {
	return int(max(min(dict, size), lzma.MinDictCap))
}

// decodeLZMA2Ulikunitz decodes the LZMA2 data in, which must end exactly with its
// end marker, into out, which it must fill exactly.
func decodeLZMA2Ulikunitz(out, in []byte, dict int64, closed *atomic.Bool) error {
	src := bytes.NewReader(in)
	r, err := lzma.Reader2Config{DictCap: dictCap(dict, int64(len(out)))}.NewReader2(src)
	if err != nil {
		return err
	}
	for n := 0; n < len(out); {
		if closed.Load() {
			return ErrClosed
		}
		k, err := r.Read(out[n:min(len(out), n+1<<20)])
		n += k
		if err == io.EOF {
			return errors.New("it decodes to fewer bytes than its index gives")
		}
		if err != nil {
			return err
		}
	}
	var one [1]byte
	if k, err := r.Read(one[:]); k != 0 {
		return errors.New("it decodes to more bytes than its index gives")
	} else if err != io.EOF {
		return err
	}
	if src.Len() != 0 {
		return errors.New("its LZMA2 data ends before its compressed size")
	}
	return nil
}
