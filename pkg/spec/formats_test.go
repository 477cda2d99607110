package spec_test

import (
	"slices"
	"testing"

	"github.com/kiln-build/kiln/pkg/imgfmt"
	"github.com/kiln-build/kiln/pkg/spec"
)

// TestFormatsAreImgfmts: the output formats a spec may name are the ones
// pkg/imgfmt writes (its table of formats), so that a format added there
// is added here in the same change.
func TestFormatsAreImgfmts(t *testing.T) {
	if !slices.Equal(spec.Formats, imgfmt.Formats) {
		t.Fatalf("spec.Formats %v, imgfmt.Formats %v", spec.Formats, imgfmt.Formats)
	}
}
