package initramfs

import (
	"bytes"
	"debug/elf"
	"strings"
	"testing"
)

// kmodFor is kmod for ELF machine m.
func kmodFor(m elf.Machine, depends string) []byte {
	return fakeModuleFor(m, "vermagic="+testKver+" SMP preempt mod_unload", "depends="+depends)
}

// virtModules are the files of a kernel with the default modules of both
// architectures, all for machine m.
func virtModules(m elf.Machine) map[string][]byte {
	files := map[string][]byte{}
	for _, n := range []string{"virtio_blk", "virtio_pci", "virtio_mmio", "virtio_scsi", "sd_mod", "ext4"} {
		files["kernel/drivers/"+n+".ko"] = kmodFor(m, "")
	}
	return files
}

// TestResolveModulesMachine: without names, an arm64 kernel's modules
// (read from their ELF machine, or given) get DefaultModulesARM64, with
// virtio_mmio for QEMU's virt machine, and an x86-64 kernel's get
// DefaultModules, without it.
func TestResolveModulesMachine(t *testing.T) {
	arm := modTree(virtModules(elf.EM_AARCH64))
	x86 := modTree(virtModules(elf.EM_X86_64))
	for _, c := range []struct {
		name string
		run  func() ([]Module, error)
		want string
	}{
		{"arm64 read from the modules", func() ([]Module, error) { return ResolveModules(arm, testKver, nil) }, "virtio_blk virtio_pci virtio_mmio virtio_scsi sd_mod ext4"},
		{"arm64 given", func() ([]Module, error) { return ResolveModulesFor(arm, testKver, nil, elf.EM_AARCH64) }, "virtio_blk virtio_pci virtio_mmio virtio_scsi sd_mod ext4"},
		{"x86-64 read from the modules", func() ([]Module, error) { return ResolveModules(x86, testKver, nil) }, "virtio_blk virtio_pci virtio_scsi sd_mod ext4"},
		{"x86-64 given", func() ([]Module, error) { return ResolveModulesFor(x86, testKver, nil, elf.EM_X86_64) }, "virtio_blk virtio_pci virtio_scsi sd_mod ext4"},
	} {
		mods, err := c.run()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := moduleNames(mods); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestResolveModulesWrongMachine: a module for another machine than the
// image's is refused, naming it and both machines; so is a kernel whose
// modules mix machines when none is given; Build passes the machine on.
func TestResolveModulesWrongMachine(t *testing.T) {
	x86 := modTree(virtModules(elf.EM_X86_64))
	_, err := ResolveModulesFor(x86, testKver, []string{"ext4"}, elf.EM_AARCH64)
	if err == nil || !strings.Contains(err.Error(), "module ext4 (/usr/lib/modules/"+testKver+"/kernel/drivers/ext4.ko) is for ELF machine EM_X86_64 (x86-64), and the image is for EM_AARCH64 (arm64)") {
		t.Errorf("x86-64 module for an arm64 image: %v", err)
	}
	// Without names: the default list for the machine asked for, and the
	// refusal all the same.
	if _, err := ResolveModulesFor(x86, testKver, nil, elf.EM_AARCH64); err == nil || !strings.Contains(err.Error(), "and the image is for EM_AARCH64 (arm64)") {
		t.Errorf("x86-64 kernel, arm64 defaults: %v", err)
	}

	mixed := virtModules(elf.EM_AARCH64)
	mixed["kernel/drivers/virtio_blk.ko"] = kmodFor(elf.EM_X86_64, "")
	_, err = ResolveModules(modTree(mixed), testKver, nil)
	if err == nil || !strings.Contains(err.Error(), "module virtio_blk (/usr/lib/modules/"+testKver+"/kernel/drivers/virtio_blk.ko) is for ELF machine EM_X86_64 (x86-64), and /usr/lib/modules/"+testKver+"/kernel/drivers/ext4.ko is for EM_AARCH64 (arm64)") {
		t.Errorf("mixed kernel: %v", err)
	}

	var out bytes.Buffer
	err = Build(&out, x86, testKver, Options{Epoch: testEpoch, Compression: "none", Init: testInit, Machine: elf.EM_AARCH64})
	if err == nil || !strings.Contains(err.Error(), "and the image is for EM_AARCH64 (arm64)") || out.Len() != 0 {
		t.Errorf("Build of x86-64 modules for arm64: %v, %d bytes written", err, out.Len())
	}
	if err := Build(&out, x86, testKver, Options{Epoch: testEpoch, Compression: "none", Init: testInit, Machine: elf.EM_X86_64}); err != nil {
		t.Errorf("Build for the modules' own machine: %v", err)
	}
}
