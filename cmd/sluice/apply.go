package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/manifest"
	"github.com/sluice/sluice/internal/resource"
)

func newApplyCommand() *cobra.Command {
	var (
		files     []string
		namespace string
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests: all of them, or none if any is invalid",
		Long: `Apply creates or updates every object of the manifests (multi-document YAML or
JSON; a directory's *.yaml, *.yml and *.json files; - for stdin) by
server-side apply. Every document is validated by the server (a dry run)
before any is applied: if one is invalid, none is applied and each error is
printed with its file, document index and field.`,
		Example: "  sluice apply -f examples/\n  sluice get svc greeter -o yaml | sluice apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := readManifests(cmd, files)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ks, err := discoverKinds(cmd.Context(), c)
			if err != nil {
				return err
			}
			a := applier{c: c, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}
			return a.apply(cmd.Context(), ks, docs, namespace, cmd.Flags().Changed("namespace"))
		},
	}
	addConnectionFlags(cmd.Flags())
	addNamespaceFlag(cmd.Flags(), &namespace)
	addFilenameFlag(cmd, &files, "apply")
	return cmd
}

func addFilenameFlag(cmd *cobra.Command, files *[]string, verb string) {
	cmd.Flags().StringSliceVarP(files, "filename", "f", nil, "file, directory (its *.yaml, *.yml, *.json) or - (stdin) of the objects to "+verb+"; repeatable")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
}

// readManifests reads the documents of -f, which must name some.
func readManifests(cmd *cobra.Command, files []string) ([]manifest.Document, error) {
	if len(files) == 0 {
		return nil, errors.New("-f FILE|DIR|- is required")
	}
	docs, err := manifest.Read(files, cmd.InOrStdin())
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects in %v", files)
	}
	return docs, nil
}

// target is a document ready to send.
type target struct {
	doc       manifest.Document
	kind      resource.APIResource
	namespace string
	name      string
}

// targetOf resolves a document's kind and namespace: its own, else -n.
// With an explicit -n, a document naming another namespace is an error.
func targetOf(ks kinds, d manifest.Document, namespace string, explicit bool) (target, error) {
	k, err := ks.byType(d.Object.GetAPIVersion(), d.Object.GetKind())
	if err != nil {
		return target{}, err
	}
	t := target{doc: d, kind: k, namespace: namespace, name: d.Object.GetName()}
	if t.name == "" {
		return target{}, errors.New("metadata.name: is required")
	}
	if ns := d.Object.GetNamespace(); ns != "" {
		if explicit && ns != namespace {
			return target{}, fmt.Errorf("metadata.namespace %q differs from -n %q", ns, namespace)
		}
		t.namespace = ns
	}
	return t, nil
}

func (t target) String() string { return ref(t.kind, t.name) }

// applier applies documents and reports on them.
type applier struct {
	c           *client.Client
	out, errOut io.Writer
}

// objectMeta is what apply reads of the objects the server returns.
type objectMeta struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

// apply validates every document by a dry run, then applies them all if
// all are valid.
func (a applier) apply(ctx context.Context, ks kinds, docs []manifest.Document, namespace string, explicit bool) error {
	var (
		targets  []target
		problems []string
		invalid  int
		// before holds each existing object's resourceVersion, so that an
		// apply that leaves it unchanged can say so.
		before []string
	)
	for _, d := range docs {
		t, err := targetOf(ks, d, namespace, explicit)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", d, err))
			invalid++
			continue
		}
		var cur objectMeta
		created, err := a.send(ctx, t, &cur, true)
		if err != nil {
			if !aboutDocument(err) {
				return err
			}
			problems = append(problems, problemsOf(t, err)...)
			invalid++
			continue
		}
		if created {
			cur.Metadata.ResourceVersion = ""
		}
		targets = append(targets, t)
		before = append(before, cur.Metadata.ResourceVersion)
	}
	if invalid > 0 {
		for _, p := range problems {
			fmt.Fprintln(a.errOut, p)
		}
		return fmt.Errorf("%d of %d documents are invalid; nothing was applied", invalid, len(docs))
	}
	failed := 0
	for i, t := range targets {
		var cur objectMeta
		created, err := a.send(ctx, t, &cur, false)
		if err != nil {
			if !aboutDocument(err) {
				return fmt.Errorf("%s: %w (%d of %d documents were applied)", t.doc, err, i-failed, len(targets))
			}
			for _, p := range problemsOf(t, err) {
				fmt.Fprintln(a.errOut, p)
			}
			failed++
			continue
		}
		result := "configured"
		switch {
		case created:
			result = "created"
		case cur.Metadata.ResourceVersion == before[i]:
			result = "unchanged"
		}
		fmt.Fprintf(a.out, "%s %s\n", t, result)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d documents could not be applied", failed, len(targets))
	}
	return nil
}

func (a applier) send(ctx context.Context, t target, out *objectMeta, dryRun bool) (created bool, err error) {
	body, err := json.Marshal(t.doc.Object.Object)
	if err != nil {
		return false, fmt.Errorf("%s: %w", t.doc, err)
	}
	return a.c.Apply(ctx, collection(t.kind), t.namespace, t.name, json.RawMessage(body), out, dryRun)
}

// aboutDocument says whether err is the server's verdict on one document,
// rather than a failure (unreachable server, bad token) that would fail
// every document alike.
func aboutDocument(err error) bool {
	for _, e := range []error{resource.ErrInvalid, resource.ErrBadRequest, resource.ErrNotFound, resource.ErrConflict, resource.ErrAlreadyExists, resource.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// problemsOf renders the server's error about a document, one line per
// field at fault: "FILE document N (line L): service/x: FIELD: REASON".
func problemsOf(t target, err error) []string {
	var st *resource.Status
	if !errors.As(err, &st) || len(st.Details) == 0 {
		return []string{fmt.Sprintf("%s: %s: %v", t.doc, t, err)}
	}
	lines := make([]string, len(st.Details))
	for i, c := range st.Details {
		if c.Field == "" {
			lines[i] = fmt.Sprintf("%s: %s: %s", t.doc, t, c.Reason)
			continue
		}
		lines[i] = fmt.Sprintf("%s: %s: %s: %s", t.doc, t, c.Field, c.Reason)
	}
	return lines
}
