package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice/sluice/internal/printer"
)

func newGetCommand() *cobra.Command {
	var (
		namespace, selector, output string
		all                         bool
	)
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show one object or a list of objects",
		Example: "  sluice get svc\n  sluice get endpoints -l version=v2 -o wide\n" +
			"  sluice get grpcroute greeter-split -o yaml\n  sluice get gw -A",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeKindAndNames(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := printer.ParseFormat(output)
			if err != nil {
				return err
			}
			if len(args) == 2 && (all || selector != "") {
				return errors.New("a NAME cannot be combined with -A or -l")
			}
			c, k, err := clientAndKind(cmd, args[0])
			if err != nil {
				return err
			}
			if all {
				namespace = ""
			}
			var raw json.RawMessage
			if len(args) == 2 {
				err = c.Get(cmd.Context(), collection(k), namespace, args[1], &raw)
			} else {
				err = c.List(cmd.Context(), collection(k), namespace, selector, &raw)
			}
			if err != nil {
				return err
			}
			if format == printer.YAML || format == printer.JSON {
				return printer.Raw(cmd.OutOrStdout(), format, raw)
			}
			objs, err := decodeObjects(raw, len(args) == 2)
			if err != nil {
				return err
			}
			if len(objs) == 0 {
				if all {
					fmt.Fprintln(cmd.ErrOrStderr(), "No resources found.")
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "No resources found in %s namespace.\n", namespace)
				}
				return nil
			}
			return printer.PrintTable(cmd.OutOrStdout(), k.Kind, objs, printer.TableOptions{
				Wide: format == printer.Wide, AllNamespaces: all, Now: time.Now(),
			})
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	addNamespaceFlag(f, &namespace)
	f.BoolVarP(&all, "all-namespaces", "A", false, "list the objects of every namespace")
	f.StringVarP(&selector, "selector", "l", "", "label selector, e.g. app=greeter,version!=v1")
	f.StringVarP(&output, "output", "o", "table", "output format: table, wide, yaml or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "wide", "yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// decodeObjects decodes the server's answer: one object, or a list's items.
func decodeObjects(raw []byte, single bool) ([]unstructured.Unstructured, error) {
	if single {
		var obj unstructured.Unstructured
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("decoding the server's answer: %w", err)
		}
		return []unstructured.Unstructured{obj}, nil
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("decoding the server's answer: %w", err)
	}
	return list.Items, nil
}
