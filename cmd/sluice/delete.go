package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newDeleteCommand() *cobra.Command {
	var (
		files     []string
		namespace string
	)
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE|DIR|-)",
		Short: "Delete objects by kind and name, or those of manifests",
		Example: "  sluice delete svc greeter-v2\n  sluice delete ep greeter-1 greeter-2 -n shop\n" +
			"  sluice delete -f examples/",
		ValidArgsFunction: completeKindAndNames(-1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(files) > 0) == (len(args) > 0) {
				return errors.New("give either KIND NAME... or -f FILE|DIR|-")
			}
			if len(files) == 0 && len(args) < 2 {
				return errors.New("give the NAME of at least one object to delete")
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ks, err := discoverKinds(cmd.Context(), c)
			if err != nil {
				return err
			}
			targets, err := deleteTargets(cmd, ks, files, args, namespace)
			if err != nil {
				return err
			}
			var errs []error
			for _, t := range targets {
				if err := c.Delete(cmd.Context(), collection(t.kind), t.namespace, t.name, nil, nil, false); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", t, err))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", t)
			}
			return errors.Join(errs...)
		},
	}
	addConnectionFlags(cmd.Flags())
	addNamespaceFlag(cmd.Flags(), &namespace)
	addFilenameFlag(cmd, &files, "delete")
	return cmd
}

// deleteTargets resolves what to delete: the objects of the manifests, or
// the objects named on the command line.
func deleteTargets(cmd *cobra.Command, ks kinds, files, args []string, namespace string) ([]target, error) {
	var targets []target
	if len(files) == 0 {
		k, err := ks.byName(args[0])
		if err != nil {
			return nil, err
		}
		for _, name := range args[1:] {
			targets = append(targets, target{kind: k, namespace: namespace, name: name})
		}
		return targets, nil
	}
	docs, err := readManifests(cmd, files)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, d := range docs {
		t, err := targetOf(ks, d, namespace, cmd.Flags().Changed("namespace"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", d, err))
			continue
		}
		targets = append(targets, t)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("nothing was deleted:\n%s", strings.Join(problems, "\n"))
	}
	return targets, nil
}
