package main

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the API calls of shell completion, which must
// not hang a shell when the server is slow or gone.
const completionTimeout = 2 * time.Second

// completeKindAndNames completes a command's KIND argument from the server's
// discovery, then up to maxNames NAME arguments (-1: any number) from a list
// of that kind. It completes nothing when the server cannot be reached.
func completeKindAndNames(maxNames int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		const directive = cobra.ShellCompDirectiveNoFileComp
		if maxNames >= 0 && len(args) > maxNames {
			return nil, directive
		}
		// Shell completion runs the root's hook on its own hidden command, not
		// on this one: run it here so that --server and --token come from the
		// environment and config file too.
		if hook := cmd.Root().PersistentPreRunE; hook != nil {
			if err := hook(cmd, args); err != nil {
				return nil, directive
			}
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		c, err := newClient(cmd)
		if err != nil {
			return nil, directive
		}
		ks, err := discoverKinds(ctx, c)
		if err != nil {
			return nil, directive
		}
		var candidates []string
		if len(args) == 0 {
			for _, k := range ks {
				candidates = append(candidates, k.Plural)
			}
			sort.Strings(candidates)
		} else {
			k, err := ks.byName(args[0])
			if err != nil {
				return nil, directive
			}
			namespace, _ := cmd.Flags().GetString("namespace")
			var list struct {
				Items []struct {
					Metadata struct{ Name string } `json:"metadata"`
				} `json:"items"`
			}
			if err := c.List(ctx, collection(k), namespace, "", &list); err != nil {
				return nil, directive
			}
			for _, item := range list.Items {
				candidates = append(candidates, item.Metadata.Name)
			}
		}
		var out []string
		for _, c := range candidates {
			if strings.HasPrefix(c, toComplete) {
				out = append(out, c)
			}
		}
		return out, directive
	}
}
