package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
