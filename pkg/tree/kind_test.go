package tree

import "testing"

// TestKindOnDisk pins the Linux numbers the ext4 and EROFS writers store
// for each kind: the st_mode type bits and the dirent file type.
func TestKindOnDisk(t *testing.T) {
	for _, c := range []struct {
		k      Kind
		mode   uint32
		dirent uint8
	}{
		{Regular, 0o100000, 1}, {Dir, 0o040000, 2}, {CharDev, 0o020000, 3},
		{BlockDev, 0o060000, 4}, {FIFO, 0o010000, 5}, {Symlink, 0o120000, 7}, {0, 0, 0},
	} {
		if got := c.k.ModeType(); got != c.mode {
			t.Errorf("%v.ModeType() = %#o, want %#o", c.k, got, c.mode)
		}
		if got := c.k.DirentType(); got != c.dirent {
			t.Errorf("%v.DirentType() = %d, want %d", c.k, got, c.dirent)
		}
	}
}
