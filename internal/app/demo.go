package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// DemoAccount is the demo account as dev mode keeps it, in
// <var>/demo.json (mode 0600), from the start that created it.
type DemoAccount struct {
	NIR       string `json:"nir"`
	AccountID string `json:"account_id"`
	Password  string `json:"password"`
}

func demoPath(varDir string) string { return filepath.Join(varDir, "demo.json") }

// readDemo reads <var>/demo.json; an older var dir has none: the account
// was then created with DemoPassword.
func readDemo(varDir string) (DemoAccount, error) {
	d := DemoAccount{NIR: DemoNIR, Password: DemoPassword}
	b, err := os.ReadFile(demoPath(varDir))
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", demoPath(varDir), err)
	}
	return d, nil
}

func writeDemo(varDir string, d DemoAccount) error { return writePrivateJSON(demoPath(varDir), d) }

// DemoTruth is what the banner may say of the demo account's password.
type DemoTruth struct {
	NIR      string
	Password string // the password, only while it opens the account; "" otherwise
	// Why it is not shown: "changed" (a password.changed event on the
	// account: a change or a reset), "deactivated", or "unknown" (the
	// account's password is not the one dev mode kept).
	Hidden string
}

// DemoPasswordTruth tells whether the kept demo password still opens the
// demo account, from its events alone: a password.changed event after its
// last registration hides it; otherwise the kept password is checked
// against the account's current hash, here, with no login attempt (which
// would record a failure when it is wrong).
func (d *Dev) DemoPasswordTruth(ctx context.Context) (DemoTruth, error) {
	return demoPasswordTruth(ctx, d.Config, d.Config.VarDir, d.Commands.Store)
}

// demoPasswordTruth is DemoPasswordTruth for the demo account kept in
// <demoDir>/demo.json, read from store, with cfg's keys and policy.
func demoPasswordTruth(ctx context.Context, cfg config.Config, demoDir string, store *eventstore.Partitioned) (DemoTruth, error) {
	demo, err := readDemo(demoDir)
	if err != nil {
		return DemoTruth{}, err
	}
	t := DemoTruth{NIR: demo.NIR}
	id := demo.AccountID
	if id == "" {
		keys, err := cfg.Keys()
		if err != nil {
			return t, err
		}
		nir, err := domain.ParseNIR(demo.NIR)
		if err != nil {
			return t, err
		}
		// Under each key: the demo account may predate a key rotation.
		for _, k := range keys.NIRIndexKeys(nir) {
			if id, err = store.Index().Get(ctx, k); err == nil {
				break
			}
		}
		if err != nil {
			return t, fmt.Errorf("find the demo account: %w", err)
		}
	}
	recs, err := store.Load(ctx, id, 0)
	if err != nil {
		return t, fmt.Errorf("read the demo account's events: %w", err)
	}
	t.Hidden = demoHidden(recs, func(hash string) bool {
		ok, _, err := secrets.VerifyPassword(demo.Password, hash, cfg.Policy.Argon2, cfg.Policy.HashLimits)
		return err == nil && ok
	})
	if t.Hidden == "" {
		t.Password = demo.Password
	}
	return t, nil
}

// demoHidden reads an account's history: "" when the password may be
// shown, else why not.
func demoHidden(recs []eventstore.Record, opens func(hash string) bool) string {
	hash, changed, deactivated := "", false, false
	for _, r := range recs {
		switch e := r.Envelope.Data.(type) {
		case events.AccountRegistered:
			hash, changed, deactivated = e.PasswordHash, false, false
		case events.AccountReactivated:
			hash, changed, deactivated = e.PasswordHash, false, false
		case events.AccountDeactivated:
			deactivated = true
		case events.PasswordChanged:
			hash, changed = e.PasswordHash, true
		case events.PasswordVerified:
			if e.NewPasswordHash != "" { // rehashed: the same password
				hash = e.NewPasswordHash
			}
		case events.LoginSucceeded:
			if e.NewPasswordHash != "" {
				hash = e.NewPasswordHash
			}
		}
	}
	switch {
	case deactivated:
		return "deactivated"
	case changed:
		return "changed"
	case hash == "" || !opens(hash):
		return "unknown"
	}
	return ""
}
