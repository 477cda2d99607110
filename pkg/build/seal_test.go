package build

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/judge"
	"github.com/kiln-build/kiln/internal/testkit"
	"github.com/kiln-build/kiln/pkg/disk"
	"github.com/kiln-build/kiln/pkg/fs/erofs"
	"github.com/kiln-build/kiln/pkg/tree"
)

// sealedSpec is a GPT disk with a sealed EROFS root and an ext4 /var.
const sealedSpec = `epoch: 1700000000
layers:
  - path: rootfs/
disk:
  table: gpt
  partitions:
    - {name: root, type: root, filesystem: erofs, verity: true, size: auto, mount: /}
    - {name: var, type: var, filesystem: ext4, size: 8MiB, mount: /var}
`

// TestBuildSealed: verity: true gives a root-verity partition after the
// root; the two partition GUIDs are the root hash's halves; veritysetup
// verify accepts the pair with the root hash the build reports and refuses
// another; fsck.erofs accepts the root; two builds are bit-identical.
func TestBuildSealed(t *testing.T) {
	judge.Need(t, "veritysetup", "fsck.erofs", "e2fsck")
	dir := t.TempDir()
	checkoutTree(t, filepath.Join(dir, "rootfs"), 0o022, map[string]string{
		"etc/os-release":       "ID=test\n",
		"usr/bin/hello":        "#!/bin/sh\necho hello\n*",
		"var/lib/state/a.txt":  "state\n",
		"usr/share/big/readme": strings.Repeat("kiln ", 50000),
	})
	sum1, res := buildSpec(t, dir, sealedSpec)
	img := filepath.Join(dir, "out.img")
	if len(res.Verity) != 1 {
		t.Fatalf("verity results %+v, want one", res.Verity)
	}
	v := res.Verity[0]
	if v.Partition != "root" || v.HashPartition != "root-verity" || len(v.RootHash) != 64 || len(v.Salt) != 64 {
		t.Fatalf("verity result %+v", v)
	}
	l := res.Layout
	if len(l.Partitions) != 3 {
		t.Fatalf("%d partitions, want root, root-verity, var", len(l.Partitions))
	}
	data, hash := l.Partitions[0], l.Partitions[1]
	if data.Type().Name != "root-x86-64" || hash.Type().Name != "root-verity-x86-64" || l.Partitions[2].Type().Name != "var" {
		t.Fatalf("types %s, %s, %s", data.Type().Name, hash.Type().Name, l.Partitions[2].Type().Name)
	}
	hexGUID := func(s string) string { return strings.ReplaceAll(s, "-", "") }
	if got := hexGUID(data.GUID.String()); got != v.RootHash[:32] {
		t.Errorf("root partition GUID %s, want the root hash's first 128 bits %s", data.GUID, v.RootHash[:32])
	}
	if got := hexGUID(hash.GUID.String()); got != v.RootHash[32:] {
		t.Errorf("hash partition GUID %s, want the root hash's last 128 bits %s", hash.GUID, v.RootHash[32:])
	}
	// The partition table as written says the same (sgdisk reads it).
	judge.SgdiskVerify(t, img)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	back, err := disk.Read(f, fi.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if back.Partitions[0].GUID != data.GUID || back.Partitions[1].GUID != hash.GUID {
		t.Errorf("GUIDs read back %s %s, planned %s %s", back.Partitions[0].GUID, back.Partitions[1].GUID, data.GUID, hash.GUID)
	}

	dataFile := judge.Extract(t, img, data.Start, data.Size)
	hashFile := judge.Extract(t, img, hash.Start, hash.Size)
	judge.FsckErofs(t, dataFile)
	judge.E2fsck(t, judge.Extract(t, img, l.Partitions[2].Start, l.Partitions[2].Size))
	if out, ok := judge.VeritysetupVerify(t, dataFile, hashFile, v.RootHash); !ok {
		t.Fatalf("veritysetup verify refuses kiln's root hash:\n%s", out)
	}
	if out, ok := judge.VeritysetupVerify(t, dataFile, hashFile, strings.Repeat("ab", 32)); ok {
		t.Fatalf("veritysetup verify accepts a wrong root hash:\n%s", out)
	}
	// A flipped byte inside the data fails verification: the judge can fail.
	b, err := os.ReadFile(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	b[4096+17] ^= 0x40
	bad := filepath.Join(t.TempDir(), "bad.img")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := judge.VeritysetupVerify(t, bad, hashFile, v.RootHash); ok {
		t.Fatalf("veritysetup verify accepts a tampered root:\n%s", out)
	}
	if _, err := hex.DecodeString(v.RootHash); err != nil {
		t.Fatal(err)
	}

	// /var went to its own partition; the sealed root keeps only the
	// directory it is mounted on.
	df, _ := testkit.Open(t, dataFile)
	root, err := erofs.ReadTree(df, data.Size)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := root.Resolve("/var", false); err != nil || n.Kind != tree.Dir {
		t.Errorf("/var in the root: %v, %v; want the empty mount point", n, err)
	}
	if _, _, err := root.Resolve("/var/lib/state/a.txt", false); err == nil {
		t.Errorf("/var/lib/state/a.txt is in the sealed root, not only in the var partition")
	}
	if n, ok := judge.ReadExt4(t, judge.Extract(t, img, l.Partitions[2].Start, l.Partitions[2].Size))["/lib/state/a.txt"]; !ok || n.SHA256 != judge.SHA256([]byte("state\n")) {
		t.Errorf("var partition's /lib/state/a.txt: %+v (present %v)", n, ok)
	}
	sum2, res2 := buildSpec(t, dir, sealedSpec)
	if sum1 != sum2 || res2.Verity[0].RootHash != v.RootHash {
		t.Fatalf("two builds differ: %s %s, root hash %s %s", sum1, sum2, v.RootHash, res2.Verity[0].RootHash)
	}
}
