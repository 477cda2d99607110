package testkit

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// TestSparseImage checks the fuzz input format's encoder and decoder.
func TestSparseImage(t *testing.T) {
	img := make([]byte, 3*sparsePage+100)
	copy(img[10:], "abc")
	copy(img[sparsePage-2:], "spans pages")
	copy(img[3*sparsePage+90:], "end")
	enc := EncodeSparse(img, [][2]int64{{0, int64(len(img))}})
	m, ok := DecodeSparse(enc)
	if !ok || m.Size != int64(len(img)) {
		t.Fatalf("decode: %v, size %d", ok, m.Size)
	}
	got := make([]byte, len(img))
	if n, err := m.ReadAt(got, 0); n != len(img) || err != nil {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(got, img) {
		t.Error("round trip differs")
	}
	if n, err := m.ReadAt(got, 1); n != len(img)-1 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d, %v", n, err)
	}
	if _, ok := DecodeSparse(binary.LittleEndian.AppendUint32(nil, MaxSparseImage+1)); ok {
		t.Error("an image larger than the limit decoded")
	}
}
