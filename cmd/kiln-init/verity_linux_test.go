//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/repro"
	"github.com/kiln-build/kiln/pkg/verity"
)

// captureLog sends logf to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var b bytes.Buffer
	old := logOut
	logOut = &b
	t.Cleanup(func() { logOut = old })
	return &b
}

// sealedDisk plans a GPT disk with the verity pair of sealHash (data and
// hash partitions named by the root hash, as the build makes them) and a
// /var partition.
func sealedDisk(t *testing.T) *disk.Layout {
	return sealedDiskOf(t, sealHash)
}

func sealedDiskOf(t *testing.T, rootHash string) *disk.Layout {
	t.Helper()
	uuid := func(s string) repro.UUID {
		u, err := repro.ParseUUID(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	l, err := disk.Plan(disk.GPT, 32*mib, []disk.PartitionSpec{
		{Name: "root", Type: "root", Size: 8 * mib, GUID: uuid(hashPartUUID(rootHash[:32]))},
		{Name: "root-verity", Type: "root-verity-x86-64", Size: 1 * mib, GUID: uuid(hashPartUUID(rootHash[len(rootHash)-32:]))},
		{Name: "var", Type: "var", Rest: true, GUID: repro.Derive("sealed", "var")},
	}, disk.PlanOptions{DiskGUID: repro.Derive("sealed", "disk")})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func fakePaths(f *fakeSys) verityPaths {
	return verityPaths{
		sysBlock: f.sys, devDir: f.dev,
		control:  filepath.Join(f.dev, "mapper/control"),
		procMisc: filepath.Join(f.sys, "proc-misc"),
		node:     filepath.Join(f.dev, "mapper/root"),
	}
}

// TestSetupVerityWaitsForBoth: the pair is found by the PARTUUIDs derived
// from roothash=; while the hash partition is missing, setupVerity times
// out with a "verity:" error naming it, and creates nothing.
func TestSetupVerityWaitsForBoth(t *testing.T) {
	cfg, err := parseCmdline("root=/dev/mapper/root roothash=" + sealHash + " rootfstype=erofs")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = time.Nanosecond // one look, then give up

	f := newFakeSys(t)
	f.addDisk(t, "vda", sealedDisk(t), 1, 3) // the kernel shows no hash partition
	log := captureLog(t)
	_, err = setupVerity(cfg, fakePaths(f))
	testkit.WantErr(t, err, "verity: no device matched the verity hash partition PARTUUID="+sealHashPart.PartUUID)
	if strings.Contains(err.Error(), "data partition") {
		t.Errorf("the error names the data partition, which is there: %v", err)
	}
	for _, want := range []string{
		"kiln-init: found the verity data partition PARTUUID=" + sealData.PartUUID + ": " + filepath.Join(f.dev, "vda1"),
		"kiln-init: timed out after 1ns waiting for the verity hash partition PARTUUID=" + sealHashPart.PartUUID,
		"vda1 vda3",
		"partition 2 PARTUUID=" + sealHashPart.PartUUID + ` "root-verity"`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Lstat(filepath.Join(f.dev, "mapper")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was made in /dev/mapper: %v", err)
	}

	// With both there, it goes on to open them; the fake nodes are files,
	// which it refuses.
	f2 := newFakeSys(t)
	f2.addDisk(t, "vda", sealedDisk(t), 1, 2, 3)
	_, err = setupVerity(cfg, fakePaths(f2))
	testkit.WantErr(t, err, "verity: data partition: "+filepath.Join(f2.dev, "vda1")+" is not a block device")
	if !strings.Contains(log.String(), "found the verity hash partition PARTUUID="+sealHashPart.PartUUID+": "+filepath.Join(f2.dev, "vda2")) {
		t.Errorf("log lacks the hash partition:\n%s", log)
	}
}

// TestSetupVerityChecksFirst goes through setupVerity with partitions
// that are files holding a pair pkg/verity made: with the right roothash=
// it passes the pre-check and goes on to device-mapper (which the fake
// tree lacks); with a wrong one, or a flipped byte in the top hash block,
// it stops at the pre-check, naming both hashes, before it touches
// device-mapper.
func TestSetupVerityChecksFirst(t *testing.T) {
	s := seal(t, 300, verity.Params{Salt: testSalt})
	setup := func(t *testing.T, cmdHash string, hash []byte) (string, error) {
		t.Helper()
		f := newFakeSys(t)
		f.addDisk(t, "vda", sealedDiskOf(t, cmdHash), 1, 2)
		writeFile(t, filepath.Join(f.dev, "vda1"), string(s.data))
		writeFile(t, filepath.Join(f.dev, "vda2"), string(hash))
		cfg, err := parseCmdline("roothash=" + cmdHash + " rootfstype=erofs kiln.timeout=1")
		if err != nil {
			t.Fatal(err)
		}
		p := fakePaths(f)
		p.files = true
		// With a device-mapper line, reaching device-mapper makes the
		// control node (as root): the trace the mismatch must not leave.
		writeFile(t, p.procMisc, "237 loop-control\n236 device-mapper\n")
		_, err = setupVerity(cfg, p)
		return p.control, err
	}
	log := captureLog(t)
	control, err := setup(t, s.root, s.hash)
	testkit.WantErr(t, err, "verity: ")
	t.Logf("the matching pair: %v", err)
	if !strings.Contains(err.Error(), control) || strings.Contains(err.Error(), "mismatch") {
		t.Errorf("the matching pair did not reach device-mapper: %v", err)
	}
	if _, serr := os.Lstat(control); os.Geteuid() == 0 && serr != nil {
		t.Errorf("as root, reaching device-mapper makes %s: %v", control, serr)
	}
	if !strings.Contains(log.String(), "kiln-init: verity: the hash partition ") || !strings.Contains(log.String(), " matches roothash= (sha256, 300 data blocks of 4096 bytes on ") {
		t.Errorf("log lacks the match:\n%s", log)
	}

	// A roothash= that is not the pair's: its PARTUUIDs name the pair
	// (the disk was built for it) but the tree does not match.
	wrong := sealHash
	control, err = setup(t, wrong, s.hash)
	testkit.WantErr(t, err, "root hash mismatch: the kernel command line says roothash="+wrong+", but the hash partition's tree has root hash "+s.root)
	if _, serr := os.Lstat(filepath.Dir(control)); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("device-mapper was touched after a mismatch: %v", serr)
	}
	flipped := append([]byte{}, s.hash...)
	flipped[4096+100] ^= 1
	_, err = setup(t, s.root, flipped)
	testkit.WantErr(t, err, "verity: data ")
	testkit.WantErr(t, err, "root hash mismatch: the kernel command line says roothash="+s.root)
}

// TestMountExtraWaits: a source that never appears stops the boot with an
// error naming the line; an absent list mounts nothing; a bad list is
// refused before anything is mounted.
func TestMountExtraWaits(t *testing.T) {
	captureLog(t)
	f := newFakeSys(t)
	l := sealedDisk(t)
	f.addDisk(t, "vda", l, 1, 2) // /var (partition 3) not shown
	dir := t.TempDir()
	list := filepath.Join(dir, "mounts")
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountExtra(list, root, time.Nanosecond, f.sys, f.dev); err != nil {
		t.Errorf("no mounts file: %v", err)
	}
	writeFile(t, list, "# sealed\nPARTUUID="+l.Partitions[2].GUID.String()+" /var ext4 rw\n")
	err := mountExtra(list, root, time.Nanosecond, f.sys, f.dev)
	testkit.WantErr(t, err, list+":2: /var: no device matched PARTUUID="+l.Partitions[2].GUID.String()+" for /var")
	writeFile(t, list, "PARTUUID="+l.Partitions[2].GUID.String()+" /var ext4\n")
	err = mountExtra(list, root, time.Nanosecond, f.sys, f.dev)
	testkit.WantErr(t, err, list+":1: 3 fields")
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("the root was written to: %v", ents)
	}
}

// TestMountEntriesReal mounts tmpfs (which ignores its source) below a
// writable and a read-only root: missing mount points are made on the
// first, refused on the second, and the flags and data reach the kernel.
// It changes the machine's mounts (undone at the end), so it is opt-in:
// set KILN_INIT_MOUNT=1, as root.
func TestMountEntriesReal(t *testing.T) {
	if os.Getenv("KILN_INIT_MOUNT") == "" {
		t.Skip("set KILN_INIT_MOUNT=1 (as root) to mount tmpfs below a temporary directory")
	}
	testkit.NeedRoot(t, "mount(2)")
	log := captureLog(t)
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, "")
	mount := func(dir, opts string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("kiln-test", dir, "tmpfs", 0, opts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	}
	entries := func(s string) []mountEntry {
		t.Helper()
		e, err := parseMounts("mounts", []byte(strings.ReplaceAll(s, "SRC", "/dev/null")))
		if err != nil {
			t.Fatal(err)
		}
		for i := range e {
			e[i].Source.Path = src
		}
		return e
	}
	root := filepath.Join(t.TempDir(), "root")
	mount(root, "mode=0755")
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Unmount(filepath.Join(root, "srv/www"), syscall.MNT_DETACH)
		syscall.Unmount(filepath.Join(root, "var"), syscall.MNT_DETACH)
	})
	err := mountEntries("mounts", entries("SRC /var tmpfs rw,nodev,size=1m\nSRC /srv/www tmpfs ro,nosuid,noexec,mode=0700"), root, time.Second, newScanner("/nonexistent", "/nonexistent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(root, "var"), "rw,nodev"},
		{filepath.Join(root, "srv/www"), "ro,nosuid,noexec"},
	} {
		if got := mountOpts(t, tc.dir); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s mounted with %q, want %q", tc.dir, got, tc.want)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "srv/www")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("mode= did not reach tmpfs: %v %v", st.Mode(), err)
	}
	if !strings.Contains(log.String(), "kiln-init: mounted "+src+" on /var (tmpfs, rw,nodev,size=1m)") {
		t.Errorf("log:\n%s", log)
	}

	// A read-only root: an existing mount point is fine, a missing one is
	// refused and not made.
	ro := filepath.Join(t.TempDir(), "ro")
	mount(ro, "mode=0755")
	if err := os.Mkdir(filepath.Join(ro, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(ro, "var"), syscall.MNT_DETACH) })
	err = mountEntries("mounts", entries("SRC /var tmpfs rw\nSRC /home tmpfs rw"), ro, time.Second, newScanner("/nonexistent", "/nonexistent"))
	testkit.WantErr(t, err, "mounts:2: /home: the mount point "+filepath.Join(ro, "home")+" is missing, and "+ro+" is on a read-only filesystem")
	if opts := mountOpts(t, filepath.Join(ro, "var")); !strings.HasPrefix(opts, "rw") {
		t.Errorf("/var on the read-only root: %q", opts)
	}
}

func mountOpts(t *testing.T, dir string) string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == dir {
			return f[5]
		}
	}
	return ""
}

// TestDMVerityReal creates a dm-verity device from two loop devices with
// kiln-init's own ioctls, reads it back, and shows that a flipped data
// byte reads as EIO. It needs root, loop devices and a kernel with
// device-mapper and dm-verity; it changes the machine's devices (undone
// at the end), so it is opt-in: set KILN_DM_TEST=1.
func TestDMVerityReal(t *testing.T) {
	if os.Getenv("KILN_DM_TEST") == "" {
		t.Skip("set KILN_DM_TEST=1 (as root, with device-mapper and loop devices) to create a real dm-verity device")
	}
	testkit.NeedRoot(t, "device-mapper ioctls and loop devices")
	judge.Need(t, "losetup")
	if _, err := os.Stat(dmControl); err != nil {
		if _, err := miscMinor("/proc/misc", "device-mapper"); err != nil {
			testkit.Missing(t, "device-mapper in this kernel (%s: %v; CONFIG_BLK_DEV_DM, modprobe dm_mod)", dmControl, err)
		}
	}
	const blocks = 64
	s := seal(t, blocks, verity.Params{Salt: testSalt, UUID: [16]byte{0x6b, 0x69, 0x6c, 0x6e}})
	dir := t.TempDir()
	dataFile, hashFile := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	writeFile(t, dataFile, string(s.data))
	writeFile(t, hashFile, string(s.hash))
	loop := func(file string) string {
		t.Helper()
		out, err := exec.Command("losetup", "--find", "--show", "--read-only", file).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup %s: %v\n%s", file, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	dataLoop, hashLoop := loop(dataFile), loop(hashFile)

	control, err := openDMControl(dmControl, "/proc/misc")
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	name := fmt.Sprintf("kiln-test-%d", os.Getpid())
	create := func() (string, func()) {
		t.Helper()
		data, dataSize, dataNum, err := openPartition(dataLoop, false)
		if err != nil {
			t.Fatal(err)
		}
		defer data.Close()
		hash, hashSize, hashNum, err := openPartition(hashLoop, false)
		if err != nil {
			t.Fatal(err)
		}
		defer hash.Close()
		g, err := checkVerity(data, dataSize, hash, hashSize, s.root)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := dmCreate(control, name, g.dmUUID(name), g.table(dataNum, hashNum, s.root))
		if err != nil {
			t.Fatal(err)
		}
		node := filepath.Join(t.TempDir(), name)
		if err := makeBlockNode(node, dev); err != nil {
			dmRemove(control, name)
			t.Fatal(err)
		}
		return node, func() {
			if err := dmRemove(control, name); err != nil {
				t.Errorf("removing %s: %v", name, err)
			}
		}
	}

	node, remove := create()
	got, err := os.ReadFile(node)
	remove()
	if err != nil {
		t.Fatalf("reading the verity device: %v", err)
	}
	if !bytes.Equal(got, s.data[:blocks*4096]) {
		t.Fatalf("the verity device reads %d bytes that differ from the %d bytes of data", len(got), blocks*4096)
	}

	// Flip a byte of block 5 in the backing file: the pre-check (top hash
	// block) still passes, the kernel refuses the block when it is read.
	f, err := os.OpenFile(dataFile, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, 5*4096+10)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, 5*4096+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	node, remove = create()
	defer remove()
	dev, err := os.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	buf := make([]byte, 4096)
	if _, err := dev.ReadAt(buf, 4*4096); err != nil {
		t.Errorf("block 4, untouched: %v", err)
	}
	if _, err := dev.ReadAt(buf, 5*4096); !errors.Is(err, syscall.EIO) {
		t.Errorf("block 5, tampered: read error %v, want EIO", err)
	}
}
