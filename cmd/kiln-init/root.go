package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/disk"
)

// scanner looks for the root device: whole disks in sysfs, their
// partition tables read with pkg/disk from the device nodes, their
// partitions in sysfs again.
type scanner struct {
	sysBlock string // "/sys/class/block": one entry per disk and partition
	devDir   string // "/dev"
	disks    map[string]*diskState
	tried    []string // what find did last, for the report on timeout
}

// diskState is what the scanner knows of one whole disk.
type diskState struct {
	size   int64 // bytes, from sysfs
	layout *disk.Layout
	err    error
}

func newScanner(sysBlock, devDir string) *scanner {
	return &scanner{sysBlock: sysBlock, devDir: devDir, disks: map[string]*diskState{}}
}

// find returns the device node of the root, if it is there yet.
func (s *scanner) find(r rootSpec) (string, bool) {
	s.tried = s.tried[:0]
	if r.Kind == rootDevPath {
		if _, err := os.Stat(r.Path); err != nil {
			s.tried = append(s.tried, fmt.Sprintf("%s: %v", r.Path, err))
			return "", false
		}
		return r.Path, true
	}
	for _, name := range s.wholeDisks() {
		d := s.disk(name)
		if d.layout == nil {
			continue
		}
		for _, p := range d.layout.Partitions {
			if !strings.EqualFold(d.layout.PartUUID(p), r.PartUUID) {
				continue
			}
			part := s.partitionName(name, p.Number)
			if part == "" {
				s.tried = append(s.tried, fmt.Sprintf("%s partition %d has PARTUUID %s, but the kernel shows no such partition in %s yet", name, p.Number, r.PartUUID, s.sysBlock))
				continue
			}
			dev := filepath.Join(s.devDir, part)
			if _, err := os.Stat(dev); err != nil {
				s.tried = append(s.tried, fmt.Sprintf("%s partition %d has PARTUUID %s, but %v", name, p.Number, r.PartUUID, err))
				continue
			}
			return dev, true
		}
	}
	return "", false
}

// wholeDisks lists the disks of sysfs with a size (partitions, and empty
// drives such as a CD-ROM without a disc, are left out), sorted.
func (s *scanner) wholeDisks() []string {
	ents, err := os.ReadDir(s.sysBlock)
	if err != nil {
		s.tried = append(s.tried, err.Error())
		return nil
	}
	var out []string
	for _, e := range ents {
		dir := filepath.Join(s.sysBlock, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
			continue
		}
		if sectors, err := readInt(filepath.Join(dir, "size")); err != nil || sectors == 0 {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// disk reads a disk's partition table, once it has been read without
// error (or again if its size changed).
func (s *scanner) disk(name string) *diskState {
	sectors, _ := readInt(filepath.Join(s.sysBlock, name, "size"))
	size := sectors * 512 // sysfs counts 512-byte sectors whatever the device's
	d := s.disks[name]
	if d != nil && d.err == nil && d.size == size {
		return d
	}
	d = &diskState{size: size}
	s.disks[name] = d
	f, err := os.Open(filepath.Join(s.devDir, name))
	if err != nil {
		d.err = err
		return d
	}
	defer f.Close()
	d.layout, d.err = disk.Read(f, size)
	return d
}

// partitionName finds the partition of a disk with the given number: the
// entry below the disk's sysfs directory whose "partition" file holds it.
func (s *scanner) partitionName(diskName string, number int) string {
	ents, err := os.ReadDir(filepath.Join(s.sysBlock, diskName))
	if err != nil {
		return ""
	}
	for _, e := range ents {
		n, err := readInt(filepath.Join(s.sysBlock, diskName, e.Name(), "partition"))
		if err == nil && n == int64(number) {
			return e.Name()
		}
	}
	return ""
}

// report says what the scanner saw: every block device, the partition
// tables of the disks and what it tried last.
func (s *scanner) report() []string {
	var lines []string
	ents, err := os.ReadDir(s.sysBlock)
	if err != nil {
		lines = append(lines, fmt.Sprintf("cannot list block devices: %v", err))
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		lines = append(lines, "the kernel shows no block device at all: is the disk driver loaded (see the module errors above)?")
	} else {
		lines = append(lines, "block devices: "+strings.Join(names, " "))
	}
	for _, name := range s.wholeDisks() {
		d := s.disk(name)
		if d.err != nil {
			lines = append(lines, fmt.Sprintf("%s (%d bytes): no partition table read: %v", name, d.size, d.err))
			continue
		}
		l := d.layout
		head := fmt.Sprintf("%s (%d bytes): %s", name, d.size, strings.ToUpper(l.Table.String()))
		if l.Table == disk.GPT {
			head += " disk GUID " + l.DiskGUID.String()
		} else {
			head += fmt.Sprintf(" signature %08x", l.DiskSignature)
		}
		if len(l.Partitions) == 0 {
			head += ", no partitions"
		}
		lines = append(lines, head)
		for _, p := range l.Partitions {
			part := s.partitionName(name, p.Number)
			if part == "" {
				part = "not in sysfs"
			}
			name := ""
			if l.Table == disk.GPT {
				name = fmt.Sprintf(" %q", p.Name)
			}
			lines = append(lines, fmt.Sprintf("  partition %d PARTUUID=%s%s %d bytes (%s)", p.Number, l.PartUUID(p), name, p.Size, part))
		}
		for _, pr := range l.Problems {
			lines = append(lines, "  problem: "+pr)
		}
	}
	for _, t := range s.tried {
		lines = append(lines, "tried: "+t)
	}
	return lines
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
