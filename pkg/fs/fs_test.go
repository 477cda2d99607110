package fs

import (
	"reflect"
	"strings"
	"testing"
)

func TestRegistryLookup(t *testing.T) {
	mk := func(Params) (Filesystem, error) { return nil, nil }
	r := Registry{"vfat": mk, "ext4": mk, "broken": nil}
	if got := r.Names(); !reflect.DeepEqual(got, []string{"broken", "ext4", "vfat"}) {
		t.Fatalf("Names() = %v", got)
	}
	if n, err := r.Lookup("ext4"); err != nil || n == nil {
		t.Fatalf("Lookup(ext4) = %v, %v", n, err)
	}
	for _, name := range []string{"erofs", "broken", ""} {
		if _, err := r.Lookup(name); err == nil || !strings.Contains(err.Error(), "no filesystem writer") {
			t.Errorf("Lookup(%q): err %v, want no filesystem writer", name, err)
		}
	}
}
