package initramfs

import (
	"bytes"
	"strings"
	"testing"
)

// TestRealKernel resolves and packs the default modules of Debian's
// kernel package, which has no modules.dep: dependencies come from
// .modinfo only.
func TestRealKernel(t *testing.T) {
	tr := kernelTree(t)
	kver, err := KernelVersion(tr, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(kver, "6.1.0-") || !strings.HasSuffix(kver, "-amd64") {
		t.Fatalf("kernel version %q", kver)
	}
	if v, err := KernelVersion(tr, "/boot/vmlinuz-"+kver); err != nil || v != kver {
		t.Fatalf("KernelVersion(/boot/vmlinuz-%s) = %q, %v", kver, v, err)
	}
	mods, err := ResolveModules(tr, kver, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("order: %s", moduleNames(mods))
	checkOrder(t, mods)
	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i
		if !strings.HasPrefix(m.Path, "/lib/modules/"+kver+"/kernel/") || m.Compression != "" || m.Rel != strings.TrimPrefix(m.Path, "/lib/modules/"+kver+"/") {
			t.Errorf("module %s: path %s, rel %s, compression %q", m.Name, m.Path, m.Rel, m.Compression)
		}
	}
	// The insmod order of BOOT-NOTES.md that works, as "before < after"
	// pairs, plus what the optional drivers need.
	for _, pair := range [][2]string{
		{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"}, {"virtio_pci_modern_dev", "virtio_pci"},
		{"virtio_pci_legacy_dev", "virtio_pci"}, {"virtio", "virtio_blk"}, {"virtio_ring", "virtio_blk"},
		{"scsi_common", "scsi_mod"}, {"scsi_mod", "libata"}, {"libata", "libahci"}, {"libahci", "ahci"},
		{"crct10dif_common", "crct10dif_generic"}, {"crct10dif_generic", "crc_t10dif"}, {"crc64", "crc64_rocksoft"},
		{"crc_t10dif", "t10_pi"}, {"crc64_rocksoft", "t10_pi"}, {"t10_pi", "sd_mod"}, {"scsi_mod", "sd_mod"},
		{"crc32c_generic", "ext4"}, {"jbd2", "ext4"}, {"mbcache", "ext4"}, {"crc16", "ext4"}, {"crc32c_generic", "jbd2"},
		{"scsi_mod", "virtio_scsi"}, {"t10_pi", "nvme_core"}, {"nvme_core", "nvme"},
	} {
		a, okA := pos[pair[0]]
		b, okB := pos[pair[1]]
		if !okA || !okB || a > b {
			t.Errorf("%s (at %d, present %v) must come before %s (at %d, present %v)", pair[0], a, okA, pair[1], b, okB)
		}
	}
	if _, ok := pos["crc32c_intel"]; ok {
		t.Error("crc32c_intel chosen besides crc32c_generic")
	}
	if len(mods) != 26 {
		t.Errorf("%d modules, want the 26 of BOOT-NOTES.md's order plus virtio_scsi, nvme_core and nvme", len(mods))
	}

	var a, b bytes.Buffer
	o := Options{Epoch: testEpoch, Init: testInit}
	if err := Build(&a, tr, kver, o); err != nil {
		t.Fatal(err)
	}
	if err := Build(&b, tr, kver, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds of the real initramfs differ")
	}
	t.Logf("initramfs: %d bytes (xz)", a.Len())
	var list string
	for _, e := range readNewc(t, decompress(t, "xz", a.Bytes())) {
		if e.Name == "etc/kiln/modules" {
			list = string(e.Data)
		}
	}
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != len(mods) {
		t.Fatalf("modules list has %d lines for %d modules:\n%s", len(lines), len(mods), list)
	}
	for i, m := range mods {
		if want := "/lib/modules/" + kver + "/" + m.Rel; lines[i] != want {
			t.Errorf("line %d: %s, want %s", i+1, lines[i], want)
		}
	}
}
