package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionInfo is the JSON of "hookq version --json".
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// newVersionCmd returns "hookq version".
func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print hookq's version",
		Example: `  hookq version
  hookq version --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), versionInfo{Version: version,
					Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH})
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "hookq %s\n", version)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"version", "go", "os", "arch"} as JSON`)
	return cmd
}
