package repro

import "testing"

func TestNewV5KnownVector(t *testing.T) {
	// RFC 4122 DNS namespace; uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
	// in Python gives 886313e1-3b8a-5372-9b90-0c9aee199e5d.
	dns, err := ParseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	if err != nil {
		t.Fatal(err)
	}
	if got := NewV5(dns, "python.org").String(); got != "886313e1-3b8a-5372-9b90-0c9aee199e5d" {
		t.Fatalf("NewV5 = %s", got)
	}
}

func TestDerive(t *testing.T) {
	a, b := Derive("seed", "disk/guid"), Derive("seed", "partition/root/guid")
	if a == b || a != Derive("seed", "disk/guid") || a == Derive("other", "disk/guid") {
		t.Fatal("Derive must be a function of seed and purpose only")
	}
	if a[6]>>4 != 5 || a[8]&0xc0 != 0x80 {
		t.Fatalf("not a version-5 RFC 4122 UUID: %s", a)
	}
	// Pinned: a volume ID derived today must be the same in every later
	// kiln, and differ by purpose.
	if got := Derive32("s", "x"); got != 0xd37960c6 {
		t.Fatalf("Derive32(s, x) = %#x, want 0xd37960c6", got)
	}
	if got := Derive32("s", "y"); got != 0xb3bc75da {
		t.Fatalf("Derive32(s, y) = %#x, want 0xb3bc75da", got)
	}
}

func TestParseUUID(t *testing.T) {
	u, err := ParseUUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	if err != nil || u.String() != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Fatalf("%v %v", u, err)
	}
	for _, bad := range []string{"", "c12a7328f81f11d2ba4b00a0c93ec93b", "c12a7328-f81f-11d2-ba4b-00a0c93ec93g"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
}

func TestEpochFromEnv(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if n, ok, err := EpochFromEnv(); n != 1700000000 || !ok || err != nil {
		t.Fatal(n, ok, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, _, err := EpochFromEnv(); err == nil {
		t.Fatal("accepted a bad SOURCE_DATE_EPOCH")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if _, ok, _ := EpochFromEnv(); ok {
		t.Fatal("empty SOURCE_DATE_EPOCH counted as set")
	}
}
