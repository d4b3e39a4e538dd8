package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newVersionCmd returns "hookq version".
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print hookq's version",
		Example: "  hookq version",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "hookq %s\n", version)
			return err
		},
	}
}
