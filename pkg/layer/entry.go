package layer

import "github.com/kiln-build/kiln/pkg/tree"

// Transitional names of types that moved to pkg/tree, for the users not
// yet moved.

//go:fix inline
type Xattr = tree.Xattr

//go:fix inline
type Content = tree.Content
