package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// loadKeys returns the service's keyring, as config.Config.Keys does:
// from AUTH_SECRET_KEY (or _FILE), else from dev mode's
// <var dir>/secret.key, then the previous keys (AUTH_SECRET_KEY_PREVIOUS,
// or _FILE). Unlike the service, authctl never creates a key: a new one
// would find nothing.
func loadKeys(secretKey, previous, varDir string) (*secrets.Keys, error) {
	if secretKey != "" {
		return config.Config{SecretKey: secretKey, SecretKeyPrev: previous, Mode: config.ModeProduction}.Keys()
	}
	path := filepath.Join(varDir, "secret.key")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no secret key: set AUTH_SECRET_KEY (or AUTH_SECRET_KEY_FILE), or point --var-dir at the dev mode's data (%s does not exist)", path)
	} else if err != nil {
		return nil, err
	}
	return config.Config{VarDir: varDir, SecretKeyPrev: previous, Mode: config.ModeDev}.Keys()
}

// newKeysCmd is `authctl keys`: the ids of the configured secret keys, and
// a new key, for the rotation procedure of docs/keys.md.
func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Show the ids of the secret keys (AUTH_SECRET_KEY, AUTH_SECRET_KEY_PREVIOUS), or make a new key",
		Long: `keys ids prints the key id of AUTH_SECRET_KEY (or AUTH_SECRET_KEY_FILE; in
dev mode <var dir>/secret.key) and of each key of AUTH_SECRET_KEY_PREVIOUS
(or its _FILE), current first: 8 hex characters derived from each key, never
the key. Run it with each component's secrets to check a rotation's
deployment (docs/keys.md). keys new prints a fresh random key (base64 of 32
bytes) for AUTH_SECRET_KEY.`,
		Example: `  AUTH_SECRET_KEY_FILE=/run/secrets/key AUTH_SECRET_KEY_PREVIOUS_FILE=/run/secrets/previous authctl keys ids
  authctl keys new > new.key`,
	}
	ids := &cobra.Command{
		Use:   "ids",
		Short: "Print the key ids of the configured secret keys, current first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			current, err := config.ReadSecret(config.EnvSecretKey)
			if err != nil {
				return err
			}
			previous, err := config.ReadSecret(config.EnvSecretKeyPrevious)
			if err != nil {
				return err
			}
			varDir, _ := cmd.Flags().GetString("var-dir")
			keys, err := loadKeys(current, previous, varDir)
			if err != nil {
				return err
			}
			for i, id := range keys.IDs() {
				role := "current"
				if i > 0 {
					role = fmt.Sprintf("previous %d", i)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-10s  %s\n", role, id)
			}
			return nil
		},
	}
	newKey := &cobra.Command{
		Use:   "new",
		Short: "Print a new random secret key (base64 of 32 bytes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), secrets.NewMasterKey())
			return err
		},
	}
	cmd.AddCommand(ids, newKey)
	return cmd
}
