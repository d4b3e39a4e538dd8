//go:build !failpoints

package failpoint

// Enabled reports whether this build has failpoints; it has not.
const Enabled = false

// Hit marks a failpoint. In this build it does nothing.
func Hit(string) {}
