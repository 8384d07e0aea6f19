package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// newRootCommand builds the command tree. Every flag of every command can also
// be set as SLUICE_<FLAG> in the environment (dashes become underscores) or
// as a top-level key named like the flag in the file given by --config; a flag
// on the command line wins over the environment, which wins over the file.
func newRootCommand() *cobra.Command {
	v := viper.New()
	v.SetEnvPrefix("SLUICE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()

	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: a traffic control plane and L7 gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return loadConfig(cmd, v)
		},
	}
	root.PersistentFlags().String("config", "", "config file (YAML, JSON or TOML) whose keys are flag names")
	root.AddCommand(
		newServerCommand(),
		newGatewayCommand(),
		newVersionCommand(),
	)
	addClientCommands(root)
	return root
}

// loadConfig fills every flag not given on the command line from the
// environment or the config file.
func loadConfig(cmd *cobra.Command, v *viper.Viper) error {
	file, _ := cmd.Flags().GetString("config")
	if !cmd.Flags().Changed("config") && v.IsSet("config") {
		file = v.GetString("config")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
	}
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || !v.IsSet(f.Name) {
			return
		}
		if err := cmd.Flags().Set(f.Name, flagValue(v.Get(f.Name))); err != nil {
			errs = append(errs, fmt.Sprintf("%s (from SLUICE_%s or the config file): %v", f.Name, strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid setting: %s", strings.Join(errs, "; "))
	}
	return nil
}

// flagValue renders a config value the way the flag parses it: lists as a
// comma-separated string.
func flagValue(val any) string {
	if list, ok := val.([]any); ok {
		parts := make([]string, len(list))
		for i, x := range list {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(val)
}
