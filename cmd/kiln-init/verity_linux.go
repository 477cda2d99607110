//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// verityPaths are where setupVerity looks; tests point them at a fake
// tree.
type verityPaths struct {
	sysBlock, devDir, control, procMisc string
	node                                string // the node made for the device: /dev/mapper/root
	files                               bool   // tests: partitions may be regular files (numbered 0:0)
}

var bootPaths = verityPaths{
	sysBlock: "/sys/class/block",
	devDir:   "/dev",
	control:  dmControl,
	procMisc: "/proc/misc",
	node:     verityNode,
}

// setupVerity waits for the data and hash partitions, checks them against
// roothash= and creates the dm-verity device, whose node it returns. Its
// errors start "verity:"; on any of them the caller must not mount
// anything as the root.
func setupVerity(cfg *config, paths verityPaths) (string, error) {
	v := cfg.Verity
	limit := "forever"
	if cfg.Timeout > 0 {
		limit = "up to " + cfg.Timeout.String()
	}
	logf("verity: waiting %s for the data partition %s and the hash partition %s of roothash=%s", limit, v.Data, v.Hash, v.RootHash)
	devs, err := waitFor(newScanner(paths.sysBlock, paths.devDir), cfg.Timeout, []wanted{
		{label: "the verity data partition " + v.Data.String(), spec: v.Data},
		{label: "the verity hash partition " + v.Hash.String(), spec: v.Hash},
	})
	if err != nil {
		return "", fmt.Errorf("verity: %w", err)
	}
	dataDev, hashDev := devs[0], devs[1]
	data, dataSize, dataNum, err := openPartition(dataDev, paths.files)
	if err != nil {
		return "", fmt.Errorf("verity: data partition: %w", err)
	}
	defer data.Close()
	hash, hashSize, hashNum, err := openPartition(hashDev, paths.files)
	if err != nil {
		return "", fmt.Errorf("verity: hash partition: %w", err)
	}
	defer hash.Close()
	g, err := checkVerity(data, dataSize, hash, hashSize, v.RootHash)
	if err != nil {
		return "", fmt.Errorf("verity: data %s, hash %s: %w", dataDev, hashDev, err)
	}
	logf("verity: the hash partition %s matches roothash= (%s, %d data blocks of %d bytes on %s)", hashDev, g.Params.Algorithm, g.DataBlocks, g.Params.DataBlockSize, dataDev)

	control, err := openDMControl(paths.control, paths.procMisc)
	if err != nil {
		return "", fmt.Errorf("verity: %w", err)
	}
	defer control.Close()
	table := g.table(dataNum, hashNum, v.RootHash)
	dev, err := dmCreate(control, verityName, g.dmUUID(verityName), table)
	if err != nil {
		return "", fmt.Errorf("verity: creating the device %q: %w", verityName, err)
	}
	major, minor := splitDev(dev)
	if err := makeBlockNode(paths.node, dev); err != nil {
		dmRemove(control, verityName)
		return "", fmt.Errorf("verity: %w", err)
	}
	logf("verity: created %s (%d:%d): verity %s", paths.node, major, minor, table.Params)
	return paths.node, nil
}

// openPartition opens a partition read-only and returns its size and its
// "major:minor", as a device-mapper table names devices. Only block
// devices are accepted, unless files (for tests).
func openPartition(dev string, files bool) (*os.File, int64, string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, 0, "", err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("%s: size: %w", dev, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, 0, "", fmt.Errorf("%s: %w", dev, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFBLK && !(files && st.Mode&syscall.S_IFMT == syscall.S_IFREG) {
		f.Close()
		return nil, 0, "", fmt.Errorf("%s is not a block device", dev)
	}
	major, minor := splitDev(uint64(st.Rdev))
	return f, size, fmt.Sprintf("%d:%d", major, minor), nil
}

// makeBlockNode makes node a block device node of dev, replacing what
// was there.
func makeBlockNode(node string, dev uint64) error {
	if err := os.MkdirAll(filepath.Dir(node), 0o755); err != nil {
		return err
	}
	if err := os.Remove(node); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := syscall.Mknod(node, syscall.S_IFBLK|0o600, int(dev)); err != nil {
		major, minor := splitDev(dev)
		return fmt.Errorf("mknod %s (%d:%d): %w", node, major, minor, err)
	}
	return nil
}
