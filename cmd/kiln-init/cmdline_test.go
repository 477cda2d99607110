package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testkit"
)

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  console=ttyS0   root=/dev/vda1\n", []string{"console=ttyS0", "root=/dev/vda1"}},
		{`rootflags="data=journal,errors=remount-ro" quiet`, []string{"rootflags=data=journal,errors=remount-ro", "quiet"}},
		{`"init=/bin/my init" rw`, []string{"init=/bin/my init", "rw"}},
		{`a=b -- single x=y`, []string{"a=b"}},
		{`x="unterminated rest`, []string{"x=unterminated rest"}},
	}
	for _, tc := range tests {
		if got := splitCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// sealHash is a root hash and the PARTUUIDs the Discoverable Partitions
// Specification derives from it, written out by hand.
const sealHash = "0123456789abcdef0123456789abcdeffedcba9876543210fedcba9876543210"

var (
	sealData     = rootSpec{Kind: rootPartUUID, PartUUID: "01234567-89ab-cdef-0123-456789abcdef"}
	sealHashPart = rootSpec{Kind: rootPartUUID, PartUUID: "fedcba98-7654-3210-fedc-ba9876543210"}
	verityRoot   = rootSpec{Kind: rootDevPath, Path: "/dev/mapper/root"}
)

func TestParseCmdline(t *testing.T) {
	gpt := rootSpec{Kind: rootPartUUID, PartUUID: "8f3a0e6c-2b1d-4c5e-9f70-0a1b2c3d4e5f"}
	tests := []struct {
		name    string
		in      string
		want    config // Warnings compared by count only
		warns   int
		wantErr string
	}{
		{
			name: "gpt partuuid with defaults",
			in:   "BOOT_IMAGE=/vmlinuz console=ttyS0 root=PARTUUID=8F3A0E6C-2B1D-4C5E-9F70-0A1B2C3D4E5F",
			want: config{Root: gpt, RootRaw: "PARTUUID=8F3A0E6C-2B1D-4C5E-9F70-0A1B2C3D4E5F", FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second},
		},
		{
			name: "mbr partuuid, everything set, last wins",
			in:   `root=/dev/sda1 root=PARTUUID=1a2b3c4d-02 rootfstype=xfs rootflags="noatime,nodiscard" ro rw init=/lib/systemd/systemd kiln.timeout=3 rootwait`,
			want: config{Root: rootSpec{Kind: rootPartUUID, PartUUID: "1a2b3c4d-02"}, RootRaw: "PARTUUID=1a2b3c4d-02", FSType: "xfs", Flags: "noatime,nodiscard",
				ReadOnly: false, Init: "/lib/systemd/systemd", InitGiven: true, Timeout: 3 * time.Second},
		},
		{
			name: "device path, wait forever",
			in:   "root=/dev/vda2 kiln.timeout=0 rw ro",
			want: config{Root: rootSpec{Kind: rootDevPath, Path: "/dev/vda2"}, RootRaw: "/dev/vda2", FSType: "ext4", ReadOnly: true, Init: "/sbin/init"},
		},
		{
			name:  "bad values are warnings",
			in:    "root=/dev/vda2 kiln.timeout=soon init=sbin/init rootfstype=",
			want:  config{Root: rootSpec{Kind: rootDevPath, Path: "/dev/vda2"}, RootRaw: "/dev/vda2", FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second},
			warns: 3,
		},
		{name: "no root", in: "console=ttyS0", wantErr: "no root= on the kernel command line"},
		{name: "filesystem UUID", in: "root=UUID=0b4e1c7a-1111-2222-3333-444455556666", wantErr: "kiln-init understands root=PARTUUID="},
		{name: "short partuuid", in: "root=PARTUUID=1a2b3c4d-2", wantErr: "8 hex digits>-<2 hex digits>"},
		{name: "partnroff", in: "root=PARTUUID=8f3a0e6c-2b1d-4c5e-9f70-0a1b2c3d4e5f/PARTNROFF=1", wantErr: "want PARTUUID="},
		{name: "label", in: "root=LABEL=root", wantErr: "kiln-init understands"},
		{
			name: "roothash, root= as the build writes it",
			in:   "console=ttyS0 root=/dev/mapper/root roothash=" + sealHash + " rootfstype=erofs ro",
			want: config{Root: verityRoot, RootRaw: "/dev/mapper/root", FSType: "erofs", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second,
				Verity: &veritySpec{RootHash: sealHash, Data: sealData, Hash: sealHashPart}},
		},
		{
			name: "roothash upper case, no root=, rw refused with a warning",
			in:   "roothash=" + strings.ToUpper(sealHash) + " rw",
			want: config{Root: verityRoot, FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second,
				Verity: &veritySpec{RootHash: sealHash, Data: sealData, Hash: sealHashPart}},
			warns: 1,
		},
		{
			name: "sha1: the two 128-bit ends overlap",
			in:   "roothash=00112233445566778899aabbccddeeff01234567",
			want: config{Root: verityRoot, FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second,
				Verity: &veritySpec{RootHash: "00112233445566778899aabbccddeeff01234567",
					Data: rootSpec{Kind: rootPartUUID, PartUUID: "00112233-4455-6677-8899-aabbccddeeff"},
					Hash: rootSpec{Kind: rootPartUUID, PartUUID: "44556677-8899-aabb-ccdd-eeff01234567"}}},
		},
		{name: "data and hash the same partition", in: "roothash=" + sealHash + " systemd.verity_root_data=/dev/vda2 systemd.verity_root_hash=/dev/vda2", wantErr: "are both /dev/vda2"},
		{
			name: "sha512 with the partitions named explicitly",
			in:   "roothash=" + strings.Repeat("0f", 64) + " systemd.verity_root_data=/dev/vda2 systemd.verity_root_hash=PARTUUID=1A2B3C4D-03",
			want: config{Root: verityRoot, FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second,
				Verity: &veritySpec{RootHash: strings.Repeat("0f", 64),
					Data: rootSpec{Kind: rootDevPath, Path: "/dev/vda2"},
					Hash: rootSpec{Kind: rootPartUUID, PartUUID: "1a2b3c4d-03"}}},
		},
		{
			name:  "verity partitions without roothash are ignored",
			in:    "root=/dev/vda2 systemd.verity_root_data=/dev/vda3",
			want:  config{Root: rootSpec{Kind: rootDevPath, Path: "/dev/vda2"}, RootRaw: "/dev/vda2", FSType: "ext4", ReadOnly: true, Init: "/sbin/init", Timeout: 30 * time.Second},
			warns: 1,
		},
		{name: "roothash with another root", in: "root=PARTUUID=" + sealData.PartUUID + " roothash=" + sealHash, wantErr: "verity: root=PARTUUID=01234567-89ab-cdef-0123-456789abcdef with roothash=: kiln-init creates the verified root itself as /dev/mapper/root; root= must be absent or root=/dev/mapper/root"},
		{name: "roothash with root=/dev/mapper/other", in: "root=/dev/mapper/other roothash=" + sealHash, wantErr: "root= must be absent"},
		{name: "roothash empty", in: "root=/dev/mapper/root roothash=", wantErr: "roothash=: want the root hash in hex"},
		{name: "roothash short", in: "roothash=" + sealHash[:62], wantErr: "64 digits (sha256)"},
		{name: "roothash not hex", in: "roothash=" + sealHash[:63] + "g", wantErr: "want the root hash in hex"},
		{name: "roothash bad data partition", in: "roothash=" + sealHash + " systemd.verity_root_data=LABEL=x", wantErr: "systemd.verity_root_data=LABEL=x: want PARTUUID="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCmdline(tc.in)
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if len(got.Warnings) != tc.warns {
				t.Errorf("warnings %q, want %d", got.Warnings, tc.warns)
			}
			got.Warnings = nil
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}
