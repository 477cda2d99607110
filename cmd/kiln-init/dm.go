package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The device-mapper ioctl interface, version 4
// (include/uapi/linux/dm-ioctl.h). Every command passes one buffer: a
// struct dm_ioctl, then the command's data from data_start; the kernel
// writes its reply over the same buffer.
const (
	dmVersionMajor = 4 // the kernel refuses another major; minor and patch are the oldest we need
	dmVersionMinor = 0
	dmVersionPatch = 0

	dmNameLen     = 128 // DM_NAME_LEN, with the NUL
	dmUUIDLen     = 129 // DM_UUID_LEN, with the NUL
	dmMaxTypeName = 16  // DM_MAX_TYPE_NAME

	dmIoctlSize      = 312 // sizeof(struct dm_ioctl)
	dmTargetSpecSize = 40  // sizeof(struct dm_target_spec)

	// dmBufferSize is the buffer every command passes (libdevmapper's
	// default): room for the replies of the commands kiln-init sends.
	dmBufferSize = 16 * 1024
)

// Command numbers (enum of dm-ioctl.h), in the order the header lists them.
const (
	dmVersionCmd    = 0
	dmDevCreateCmd  = 3
	dmDevRemoveCmd  = 4
	dmDevSuspendCmd = 6
	dmDevStatusCmd  = 7
	dmTableLoadCmd  = 9
)

// Flags of struct dm_ioctl.
const (
	dmReadOnlyFlag = 1 << 0 // DM_READONLY_FLAG: the table is loaded read-only (dm-verity requires it)
	dmSuspendFlag  = 1 << 1 // DM_SUSPEND_FLAG: DM_DEV_SUSPEND suspends; without it, resumes
	dmExistsFlag   = 1 << 2 // DM_EXISTS_FLAG
	dmActiveFlag   = 1 << 5 // DM_ACTIVE_PRESENT_FLAG: the device has a live table
)

// dmIoctlNumber is _IOWR(DM_IOCTL, cmd, struct dm_ioctl). With the
// generic encoding (x86, arm, arm64, riscv, s390: dir 3 in bits 30-31,
// 14 size bits) and with powerpc's, mips's and sparc's (dir 6 in bits
// 29-31, 13 size bits) the read|write direction lands on the same two top
// bits and 312 fits either size field: one number for every architecture.
func dmIoctlNumber(cmd uint32) uint32 {
	const dmIoctlType = 0xfd
	return 3<<30 | dmIoctlSize<<16 | dmIoctlType<<8 | cmd
}

// dmIoctl is struct dm_ioctl, little- or big-endian as the machine is
// (binary.NativeEndian): the kernel reads it in its own byte order.
type dmIoctl struct {
	Version     [3]uint32 // 0: in: the interface version we speak; out: the kernel's
	DataSize    uint32    // 12: bytes of the whole buffer, this header included
	DataStart   uint32    // 16: offset of the command's data from the start of the header
	TargetCount uint32    // 20: in: targets in a DM_TABLE_LOAD; out: of the live table
	OpenCount   int32     // 24: out
	Flags       uint32    // 28: in/out
	EventNr     uint32    // 32: in: udev cookie (0: none); out: event number
	Padding     uint32    // 36
	Dev         uint64    // 40: out: the device, as the kernel's huge_encode_dev
	Name        [dmNameLen]byte
	UUID        [dmUUIDLen]byte
	Data        [7]byte // 305: padding to 312
}

// dmTargetSpec is struct dm_target_spec; the target's parameter string
// follows it, NUL-terminated, padded to 8 bytes.
type dmTargetSpec struct {
	SectorStart uint64 // 0: first 512-byte sector of the device this target maps
	Length      uint64 // 8: sectors
	Status      int32  // 16: out only
	Next        uint32 // 20: bytes from the start of this spec to the next one
	TargetType  [dmMaxTypeName]byte
}

// dmTarget is one line of a device-mapper table.
type dmTarget struct {
	Start, Length uint64 // sectors
	Type          string // "verity"
	Params        string
}

// encodeDM builds the buffer of one command for the device named name:
// the header, then the targets (for DM_TABLE_LOAD) from data_start, in a
// buffer of at least dmBufferSize bytes for the reply.
func encodeDM(name, uuid string, flags uint32, targets []dmTarget) ([]byte, error) {
	h := dmIoctl{
		Version:     [3]uint32{dmVersionMajor, dmVersionMinor, dmVersionPatch},
		DataStart:   dmIoctlSize,
		TargetCount: uint32(len(targets)),
		Flags:       flags,
	}
	if len(name) >= dmNameLen || bytes.IndexByte([]byte(name), 0) >= 0 {
		return nil, fmt.Errorf("device-mapper name %q: at most %d bytes, no NUL", name, dmNameLen-1)
	}
	if len(uuid) >= dmUUIDLen || bytes.IndexByte([]byte(uuid), 0) >= 0 {
		return nil, fmt.Errorf("device-mapper uuid %q: at most %d bytes, no NUL", uuid, dmUUIDLen-1)
	}
	copy(h.Name[:], name)
	copy(h.UUID[:], uuid)
	var data bytes.Buffer
	for _, t := range targets {
		if len(t.Type) >= dmMaxTypeName {
			return nil, fmt.Errorf("device-mapper target type %q: at most %d bytes", t.Type, dmMaxTypeName-1)
		}
		if bytes.IndexByte([]byte(t.Params), 0) >= 0 {
			return nil, fmt.Errorf("device-mapper %s target parameters hold a NUL", t.Type)
		}
		params := len(t.Params) + 1 // with its NUL
		size := dmTargetSpecSize + (params+7)/8*8
		spec := dmTargetSpec{SectorStart: t.Start, Length: t.Length, Next: uint32(size)}
		copy(spec.TargetType[:], t.Type)
		binary.Write(&data, binary.NativeEndian, &spec)
		data.WriteString(t.Params)
		data.Write(make([]byte, size-dmTargetSpecSize-len(t.Params)))
	}
	total := max(dmBufferSize, dmIoctlSize+data.Len())
	h.DataSize = uint32(total)
	var b bytes.Buffer
	b.Grow(total)
	binary.Write(&b, binary.NativeEndian, &h)
	if b.Len() != dmIoctlSize {
		return nil, fmt.Errorf("BUG: struct dm_ioctl encoded in %d bytes, not %d", b.Len(), dmIoctlSize)
	}
	b.Write(data.Bytes())
	b.Write(make([]byte, total-b.Len()))
	return b.Bytes(), nil
}

// decodeDM reads the header of the kernel's reply.
func decodeDM(buf []byte) (dmIoctl, error) {
	var h dmIoctl
	if len(buf) < dmIoctlSize {
		return h, fmt.Errorf("device-mapper reply of %d bytes, shorter than struct dm_ioctl", len(buf))
	}
	err := binary.Read(bytes.NewReader(buf[:dmIoctlSize]), binary.NativeEndian, &h)
	return h, err
}

// splitDev splits a dev_t as glibc and Go's x/sys/unix encode st_rdev: the
// kernel's new_encode_dev (minor's low 8 bits, 12 bits of major, minor's
// upper bits), extended to 64 bits. dm_ioctl.dev (huge_encode_dev) is the
// same encoding.
func splitDev(dev uint64) (major, minor uint32) {
	major = uint32((dev>>8)&0xfff) | uint32((dev>>32)&^uint64(0xfff))
	minor = uint32(dev&0xff) | uint32((dev>>12)&^uint64(0xff))
	return major, minor
}

// mkdev is the inverse of splitDev, for mknod.
func mkdev(major, minor uint32) uint64 {
	return uint64(major&0xfff)<<8 | uint64(major&^0xfff)<<32 | uint64(minor&0xff) | uint64(minor&^0xff)<<12
}
