package size

import "testing"

func TestString(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 bytes", 1023: "1023 bytes", 1024: "1 KiB", 1536: "1.5 KiB",
		128 << 20: "128 MiB", 1<<32 - 1: "4.0 GiB", 64 << 30: "64 GiB", 1 << 62: "4 EiB",
	} {
		if got := String(n); got != want {
			t.Errorf("String(%d) = %q, want %q", n, got, want)
		}
	}
}
