package diff

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode"

	"github.com/kiln-build/kiln/pkg/fs"
)

// rawFields compares the named fields of two headers at off.
func rawFields(a, b io.ReaderAt, off int64, fields []fs.HeaderField) []Field {
	ha, hb := make([]byte, 1024), make([]byte, 1024)
	if _, err := a.ReadAt(ha, off); err != nil {
		return []Field{{"header", "unreadable: " + err.Error(), ""}}
	}
	if _, err := b.ReadAt(hb, off); err != nil {
		return []Field{{"header", "", "unreadable: " + err.Error()}}
	}
	var out []Field
	for _, f := range fields {
		x, y := ha[f.Off:f.Off+f.Size], hb[f.Off:f.Off+f.Size]
		if string(x) == string(y) {
			continue
		}
		out = append(out, Field{f.Name, showField(x, f.Show), showField(y, f.Show)})
	}
	return out
}

func showField(b []byte, how string) string {
	switch how {
	case "u":
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return fmt.Sprint(v)
	case "uuid":
		h := hex.EncodeToString(b)
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	case "str":
		return fmt.Sprintf("%q", strings.TrimRightFunc(strings.TrimRight(string(b), "\x00"), unicode.IsSpace))
	case "sha":
		return fmt.Sprintf("%d bytes, crc32 %08x", len(b), crc32.ChecksumIEEE(b))
	}
	if len(b) == 4 {
		return fmt.Sprintf("%#08x", binary.LittleEndian.Uint32(b))
	}
	return hex.EncodeToString(b)
}
