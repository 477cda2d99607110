// Package disk owns the partition table of a kiln image: it plans where
// partitions go (Plan, MinDiskSize), encodes the table as GPT (protective
// MBR, primary and backup headers and entry arrays) or as an MBR (Write,
// WriteBootCode), and reads partition tables back from images made by kiln
// or by other tools such as sgdisk, sfdisk or parted (Read).
//
// It also keeps the registry of well-known partition types (LookupType,
// TypeByGUID, TypeByMBR): kiln's short names ("esp", "root", "swap", ...),
// their GPT type GUIDs from the UAPI Group's Discoverable Partitions
// Specification and the MBR type bytes where one exists.
//
// Everything here is deterministic: the disk GUID, the MBR disk signature and
// every partition GUID come in as parameters, and nothing depends on the
// clock, on random numbers or on map iteration order. Only the partition
// table sectors are written; the contents of partitions are other packages'
// business, as is the MBR boot code, which bootloader stages write later with
// WriteBootCode.
//
// All sizes and offsets in the API are in bytes and multiples of SectorSize
// (512); LBAs appear only where the on-disk format uses them.
//
// References: UEFI Specification 2.10, chapter 5 "GUID Partition Table (GPT)
// Disk Layout"; the Discoverable Partitions Specification
// (https://uapi-group.org/specifications/specs/discoverable_partitions_specification/);
// util-linux libfdisk (dos.c, gpt.c) for the CHS conventions of the MBR.
//
// It imports only pkg/repro: partition layout knows nothing of filesystems,
// layers or image formats.
package disk
