package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/printer"
)

func newKVCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read, write and watch the KV config center",
		Long: `The KV config center keeps values (up to 512 KiB) under keys such as
app/db/url, with compare-and-set on a key's modify index, watches of a key or
a prefix, and the history of each key's versions (the last 20 replaced
versions, also of deleted keys), which a rollback restores.`,
	}
	cmd.AddCommand(
		newKVGetCommand(),
		newKVPutCommand(),
		newKVDeleteCommand(),
		newKVListCommand(),
		newKVWatchCommand(),
		newKVHistoryCommand(),
		newKVRollbackCommand(),
	)
	return cmd
}

// addCASFlag adds --cas; casFlag reads it, nil when it was not given.
func addCASFlag(f *pflag.FlagSet, what string) {
	f.Int64("cas", 0, what+" only if the key's modify index is still N (0: only if the key does not exist)")
}

func casFlag(cmd *cobra.Command) *int64 {
	if !cmd.Flags().Changed("cas") {
		return nil
	}
	n, _ := cmd.Flags().GetInt64("cas")
	return &n
}

// kvOutput checks an -o value of a kv command: "" or one of allowed.
func kvOutput(o string, allowed ...printer.Format) (printer.Format, error) {
	for _, f := range allowed {
		if printer.Format(o) == f {
			return f, nil
		}
	}
	names := make([]string, len(allowed))
	for i, f := range allowed {
		names[i] = string(f)
	}
	return "", fmt.Errorf("output format %q: want one of %s", o, strings.Join(names, ", "))
}

// printKVRaw prints v, as the API answers it, as JSON or YAML.
func printKVRaw(w io.Writer, f printer.Format, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return printer.Raw(w, f, data)
}

func newKVGetCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Get prints a key's value exactly as stored, with no newline added; -o json or
-o yaml print the whole entry (value in base64, flags, create and modify
index, time of the write).`,
		Example: "  sluice kv get app/db/url\n  sluice kv get app/db/url -o yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := kvOutput(output, "", printer.JSON, printer.YAML)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			e, err := c.KVGet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format != "" {
				return printKVRaw(cmd.OutOrStdout(), format, e)
			}
			_, err = cmd.OutOrStdout().Write(e.Value)
			return err
		},
	}
	addConnectionFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "print the entry as json or yaml")
	return cmd
}

func newKVPutCommand() *cobra.Command {
	var (
		file  string
		flags uint64
	)
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE] [-f FILE|-]",
		Short: "Write the value of a key",
		Long: `Put writes VALUE, or the contents of FILE (- for standard input), as the new
value of KEY; the value it replaces goes to the key's history. --cas makes the
write conditional: it holds only if the key's modify index is still N, or with
--cas 0 only if the key does not exist.`,
		Example: "  sluice kv put app/db/url postgres://db:5432/app\n  sluice kv put app/config -f config.json --cas 42\n" +
			"  echo -n debug | sluice kv put app/log/level -f -",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 2) == (file != "") {
				return errors.New("give the value either as VALUE or with -f FILE|-")
			}
			var value []byte
			var err error
			switch {
			case len(args) == 2:
				value = []byte(args[1])
			case file == "-":
				value, err = io.ReadAll(cmd.InOrStdin())
			default:
				value, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("reading the value: %w", err)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			e, err := c.KVPut(cmd.Context(), args[0], value, kv.PutOptions{Flags: flags, CAS: casFlag(cmd)})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "put %s at index %d\n", e.Key, e.ModifyIndex)
			return nil
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	f.StringVarP(&file, "filename", "f", "", "read the value from this file, - for standard input")
	f.Uint64Var(&flags, "flags", 0, "an opaque number stored with the value (Consul's flags)")
	addCASFlag(f, "write")
	return cmd
}

func newKVDeleteCommand() *cobra.Command {
	var recurse bool
	cmd := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key, or with --recurse every key under a prefix",
		Long: `Delete removes a key; its value stays in its history, so a rollback can bring
it back. --recurse deletes every key that begins with KEY.`,
		Example: "  sluice kv delete app/db/url\n  sluice kv delete app/ --recurse",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.KVDelete(cmd.Context(), args[0], kv.DeleteOptions{Recurse: recurse, CAS: casFlag(cmd)})
			if err != nil {
				return err
			}
			if recurse {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %d keys under %q at index %d\n", res.Deleted, args[0], res.Index)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s at index %d\n", args[0], res.Index)
			}
			return nil
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	f.BoolVar(&recurse, "recurse", false, "delete every key that begins with KEY")
	addCASFlag(f, "delete")
	return cmd
}

func newKVListCommand() *cobra.Command {
	var (
		keys      bool
		separator string
		output    string
	)
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the keys under a prefix (all keys without one)",
		Long: `List shows the entries whose keys begin with PREFIX as a table. --keys prints
only the keys, one a line; with --separator, keys are cut after the first
separator below the prefix, as directories ("app/db/").`,
		Example: "  sluice kv list app/\n  sluice kv list --keys --separator / app/",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := kvOutput(output, printer.Table, printer.JSON, printer.YAML)
			if err != nil {
				return err
			}
			if separator != "" && !keys {
				return errors.New("--separator needs --keys")
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if keys {
				l, err := c.KVKeys(cmd.Context(), prefix, separator)
				if err != nil {
					return err
				}
				if format != printer.Table {
					return printKVRaw(out, format, l)
				}
				for _, k := range l.Keys {
					fmt.Fprintln(out, k)
				}
				return nil
			}
			l, err := c.KVList(cmd.Context(), prefix)
			if err != nil {
				return err
			}
			if format != printer.Table {
				return printKVRaw(out, format, l)
			}
			if len(l.Items) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No keys found.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "KEY\tFLAGS\tMODIFY-INDEX\tMODIFIED\tSIZE")
			for _, e := range l.Items {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", e.Key, e.Flags, e.ModifyIndex, modified(e.Modified), len(e.Value))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	f.BoolVar(&keys, "keys", false, "print only the keys")
	f.StringVar(&separator, "separator", "", "with --keys, cut keys after the first separator below the prefix")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// modified renders the time of a write for a table.
func modified(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newKVHistoryCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history KEY",
		Short: "Show the versions of a key, newest first",
		Long: `History lists the versions of a key: the current value (STATE current), the
values it replaced, and values a delete ended (STATE deleted). The server
keeps the last 20 replaced versions of each key. Restore one with
"sluice kv rollback KEY INDEX".`,
		Example: "  sluice kv history app/config",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := kvOutput(output, printer.Table, printer.JSON, printer.YAML)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			h, err := c.KVHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format != printer.Table {
				return printKVRaw(cmd.OutOrStdout(), format, h)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tSTATE\tMODIFIED\tFLAGS\tSIZE\tVALUE")
			for i, v := range h.Versions {
				state := "replaced"
				switch {
				case v.Deleted:
					state = "deleted"
				case i == 0:
					state = "current"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", v.ModifyIndex, state, modified(v.Modified), v.Flags, len(v.Value), preview(v.Value))
			}
			return tw.Flush()
		},
	}
	addConnectionFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// preview shows the start of a value on one table row: text as is if it is
// printable, otherwise quoted, and shortened.
func preview(v []byte) string {
	const max = 40
	s := string(v)
	short := len(s) > max
	if short {
		s = strings.ToValidUTF8(s[:max], "")
	}
	printable := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
	if !printable || strings.TrimSpace(s) != s || s == "" {
		s = strconv.Quote(s)
	}
	if short {
		s += "…"
	}
	return s
}

func newKVRollbackCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback KEY INDEX",
		Short: "Restore the version of a key at INDEX as its new value",
		Long: `Rollback writes the value and flags the key had at INDEX (see "sluice kv
history") as a new version; the current value goes to the history. It also
brings back a deleted key.`,
		Example: "  sluice kv history app/config\n  sluice kv rollback app/config 41",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			index, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || index <= 0 {
				return fmt.Errorf("INDEX %q: want the positive index of a version, as sluice kv history shows it", args[1])
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			e, err := c.KVRollback(cmd.Context(), args[0], index, casFlag(cmd))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled %s back to index %d: now at index %d\n", e.Key, index, e.ModifyIndex)
			return nil
		},
	}
	addConnectionFlags(cmd.Flags())
	addCASFlag(cmd.Flags(), "roll back")
	return cmd
}

func newKVWatchCommand() *cobra.Command {
	var (
		prefix bool
		index  int64
		output string
	)
	cmd := &cobra.Command{
		Use:   "watch KEY",
		Short: "Print the changes of a key, or with --prefix of the keys under it, until interrupted",
		Long: `Watch prints the current value as PUT, then every change (PUT or DELETE) as it
happens, one line each; --index N prints only the changes after index N.
A dropped connection, or a server restart, is resumed from the last index
seen; if that has expired, the keys are read again and the difference is
printed.`,
		Example: "  sluice kv watch app/config\n  sluice kv watch app/ --prefix -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := kvOutput(output, printer.Table, printer.JSON)
			if err != nil {
				return err
			}
			if index < 0 {
				return fmt.Errorf("--index %d: want a non-negative index", index)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			w := &kvWatcher{
				c: c, key: args[0], prefix: prefix, json: format == printer.JSON,
				out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), index: index, known: map[string]int64{},
			}
			return w.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	f.BoolVar(&prefix, "prefix", false, "watch every key that begins with KEY")
	f.Int64Var(&index, "index", 0, "print only the changes after this index")
	f.StringVarP(&output, "output", "o", "table", "output format: table (a line per event) or json (an event per line)")
	return cmd
}

// kvWatcher prints the events of a key or prefix.
type kvWatcher struct {
	c           *client.Client
	key         string
	prefix      bool
	json        bool
	out, errOut io.Writer

	index int64            // the index to resume after
	known map[string]int64 // by key: the modify index the output shows
}

// run follows the changes until ctx ends, resuming as `sluice watch` does.
func (w *kvWatcher) run(ctx context.Context) error {
	return followResuming(ctx, "kv watch", w, w.errOut)
}

func (w *kvWatcher) position() string { return fmt.Sprint("index ", w.index) }

// follow prints the events of one stream from w.index, calling opened once
// the server accepts it, and returns why the stream ended.
func (w *kvWatcher) follow(ctx context.Context, opened func()) error {
	stream, err := w.c.KVWatch(ctx, w.key, w.prefix, w.index)
	if err != nil {
		return err
	}
	defer stream.Close()
	opened()
	w.index = max(w.index, stream.Index)
	for {
		ev, err := stream.Next()
		if err != nil {
			return err
		}
		w.show(ev)
	}
}

// reread lists the keys again after the index expired, prints the
// difference with what the output shows, and resumes from the list's index.
func (w *kvWatcher) reread(ctx context.Context) error {
	l, err := w.c.KVList(ctx, w.key)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, e := range l.Items {
		if !w.prefix && e.Key != w.key {
			continue
		}
		listed[e.Key] = true
		if w.known[e.Key] != e.ModifyIndex {
			w.show(kv.WireEvent{Type: kv.Put, Entry: &e})
		}
	}
	for _, key := range slices.Sorted(maps.Keys(w.known)) {
		if !listed[key] {
			w.show(kv.WireEvent{Type: kv.Delete, Entry: &kv.Entry{Key: key, ModifyIndex: l.Index}})
		}
	}
	w.index = l.Index
	return nil
}

// show prints one event and remembers it.
func (w *kvWatcher) show(ev kv.WireEvent) {
	e := ev.Entry
	w.index = max(w.index, e.ModifyIndex)
	if ev.Type == kv.Delete {
		delete(w.known, e.Key)
	} else {
		w.known[e.Key] = e.ModifyIndex
	}
	if w.json {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w.out, "%s\n", data)
		return
	}
	if ev.Type == kv.Delete {
		fmt.Fprintf(w.out, "%-6s %s   index=%d\n", ev.Type, e.Key, e.ModifyIndex)
		return
	}
	fmt.Fprintf(w.out, "%-6s %s   index=%d flags=%d size=%d value=%s\n", ev.Type, e.Key, e.ModifyIndex, e.Flags, len(e.Value), preview(e.Value))
}
