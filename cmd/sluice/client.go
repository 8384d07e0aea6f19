package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
)

// addClientCommands adds the commands that talk to a server's API.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(
		newApplyCommand(),
		newGetCommand(),
		newDescribeCommand(),
		newDeleteCommand(),
		newWatchCommand(),
		newProxiesCommand(),
		newKVCommand(),
	)
}

// addConnectionFlags adds the flags that say which server to talk to and as
// whom; like every flag they can come from SLUICE_SERVER, SLUICE_TOKEN or the
// config file.
func addConnectionFlags(f *pflag.FlagSet) {
	f.String("server", "http://127.0.0.1:7070", "URL of the sluice server's API")
	f.String("token", "", "bearer token to authenticate to the server with")
}

func addNamespaceFlag(f *pflag.FlagSet, ns *string) {
	f.StringVarP(ns, "namespace", "n", resource.DefaultNamespace, "namespace of the objects")
}

// newClient returns a client of the server the command's flags name.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	server, _ := cmd.Flags().GetString("server")
	token, _ := cmd.Flags().GetString("token")
	return client.New(server, token)
}

// clientAndKind returns a client of the server and the kind a KIND argument names.
func clientAndKind(cmd *cobra.Command, name string) (*client.Client, resource.APIResource, error) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, resource.APIResource{}, err
	}
	ks, err := discoverKinds(cmd.Context(), c)
	if err != nil {
		return nil, resource.APIResource{}, err
	}
	k, err := ks.byName(name)
	return c, k, err
}

// kinds are the kinds a server serves, as its discovery lists them.
type kinds []resource.APIResource

func discoverKinds(ctx context.Context, c *client.Client) (kinds, error) {
	ks, err := c.Discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("discovering the kinds the server serves: %w", err)
	}
	return ks, nil
}

// byName finds the kind a user names on the command line: its kind,
// singular, plural or a short name, in any case, optionally qualified with
// its group ("gateways.gateway.networking.k8s.io").
func (ks kinds) byName(name string) (resource.APIResource, error) {
	name = strings.ToLower(name)
	var found []resource.APIResource
	for _, k := range ks {
		for _, n := range append([]string{strings.ToLower(k.Kind), k.Plural, k.Singular}, k.ShortNames...) {
			if name == n || name == n+"."+k.Group {
				found = append(found, k)
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return resource.APIResource{}, fmt.Errorf("unknown kind %q; the server serves %s", name, ks.names())
	case 1:
		return found[0], nil
	default:
		var qualified []string
		for _, k := range found {
			qualified = append(qualified, k.Plural+"."+k.Group)
		}
		return resource.APIResource{}, fmt.Errorf("kind %q is ambiguous: say %s", name, strings.Join(qualified, " or "))
	}
}

// byType finds the kind of a document's apiVersion and kind.
func (ks kinds) byType(apiVersion, kind string) (resource.APIResource, error) {
	for _, k := range ks {
		if k.Kind == kind && apiVersionOf(k) == apiVersion {
			return k, nil
		}
	}
	served := make([]string, len(ks))
	for i, k := range ks {
		served[i] = k.Kind + " (" + apiVersionOf(k) + ")"
	}
	sort.Strings(served)
	return resource.APIResource{}, fmt.Errorf("kind %q of apiVersion %q is not served; the server serves %s", kind, apiVersion, strings.Join(served, ", "))
}

// names lists the kinds as users name them: "services (svc), ...".
func (ks kinds) names() string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Plural
		if len(k.ShortNames) > 0 {
			names[i] += " (" + strings.Join(k.ShortNames, ", ") + ")"
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func apiVersionOf(k resource.APIResource) string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

func collection(k resource.APIResource) client.Resource {
	return client.Resource{Group: k.Group, Version: k.Version, Plural: k.Plural}
}

// ref names an object in output: "service/greeter".
func ref(k resource.APIResource, name string) string {
	return strings.ToLower(k.Kind) + "/" + name
}
