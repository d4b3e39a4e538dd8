//go:build !unix

package dispatch

import "time"

// cpuTime is not measured on this system.
func cpuTime() time.Duration { return 0 }
