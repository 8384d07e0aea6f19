package main

import (
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice/sluice/internal/printer"
)

func newDescribeCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:               "describe KIND NAME",
		Short:             "Show one object in detail: metadata, spec and status",
		Example:           "  sluice describe endpoint greeter-1\n  sluice describe gw edge -n infra",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeKindAndNames(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, k, err := clientAndKind(cmd, args[0])
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.Get(cmd.Context(), collection(k), namespace, args[1], &raw); err != nil {
				return err
			}
			objs, err := decodeObjects(raw, true)
			if err != nil {
				return err
			}
			return printer.Describe(cmd.OutOrStdout(), &objs[0], time.Now())
		},
	}
	addConnectionFlags(cmd.Flags())
	addNamespaceFlag(cmd.Flags(), &namespace)
	return cmd
}
