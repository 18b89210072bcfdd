package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// adviserAct is one back-office command on an account named by --nir or
// --account-id.
type adviserAct struct {
	use, short, long, example string
	subject                   string                                        // after "<prefix>.cmd."
	flags                     func(cmd *cobra.Command, body map[string]any) // adds the act's own flags
	done                      func(rep reply) string                        // the French line on success
}

func adviserActs() []adviserAct {
	var reason, affiliation, deviceID string
	return []adviserAct{
		{use: "unlock", short: "Lift a block (wrong passwords or codes, too many codes)",
			long:    "Lifts the account's block now, as an adviser does on the phone (account.unlock).",
			subject: contract.CmdAccountUnlock,
			example: `  authctl account unlock --nir "2 69 05 49 588 157"
  authctl req account.unlock '{"nir":"2690549588157","channel":"backoffice"}'`,
			done: func(rep reply) string { return "Compte " + rep.AccountID + " débloqué." }},
		{use: "deactivate", short: "Deactivate an account (registering again with its NIR reactivates it)",
			long:    "Deactivates the account (account.deactivate): logins are refused until it registers again with its NIR.",
			subject: contract.CmdAccountDeactivate,
			example: `  authctl account deactivate --account-id 01H8X3J6Q5N4T2K9M7W1Z0B3C4 --reason "demande de l'assuré"
  authctl req account.deactivate '{"account_id":"01H8X3J6Q5N4T2K9M7W1Z0B3C4","reason":"demande de l'\''assuré","channel":"backoffice"}'`,
			flags: func(cmd *cobra.Command, body map[string]any) {
				cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the event, at most 500 bytes)")
				cmd.PreRun = func(*cobra.Command, []string) {
					if reason != "" {
						body["reason"] = reason
					}
				}
			},
			done: func(rep reply) string { return "Compte " + rep.AccountID + " désactivé." }},
		{use: "set-affiliation", short: "Set the account's affiliation: active, pending or none",
			long:    "Sets the affiliation the login checks (account.set_affiliation): active logs in; pending and none are refused with their message.",
			subject: contract.CmdAccountSetAffiliation,
			example: `  authctl account set-affiliation --nir "2 69 05 49 588 157" --affiliation active
  authctl req account.set_affiliation '{"nir":"2690549588157","affiliation":"active","channel":"backoffice"}'`,
			flags: func(cmd *cobra.Command, body map[string]any) {
				cmd.Flags().StringVar(&affiliation, "affiliation", "", "active, pending or none (required)")
				cmd.PreRun = func(*cobra.Command, []string) { body["affiliation"] = affiliation }
			},
			done: func(rep reply) string { return "Affiliation du compte " + rep.AccountID + " enregistrée." }},
		{use: "revoke-biometrics", short: "Revoke the biometric login of every device, or of one",
			long:    "Revokes the account's biometric enrolments (account.revoke_biometrics): every device, or only --device-id.",
			subject: contract.CmdAccountRevokeBiometrics,
			example: `  authctl account revoke-biometrics --nir "2 69 05 49 588 157"
  authctl req account.revoke_biometrics '{"nir":"2690549588157","channel":"backoffice"}'
  authctl req account.revoke_biometrics '{"account_id":"01H8X3J6Q5N4T2K9M7W1Z0B3C4","device_id":"iphone-de-valerie","channel":"backoffice"}'`,
			flags: func(cmd *cobra.Command, body map[string]any) {
				cmd.Flags().StringVar(&deviceID, "device-id", "", "only this device (default: every device)")
				cmd.PreRun = func(*cobra.Command, []string) {
					if deviceID != "" {
						body["device_id"] = deviceID
					}
				}
			},
			done: func(rep reply) string {
				return "Connexion biométrique révoquée pour le compte " + rep.AccountID + "."
			}},
	}
}

func newAdviserCmd(a adviserAct) *cobra.Command {
	var nir, accountID string
	var timeout time.Duration
	body := map[string]any{}
	cmd := &cobra.Command{
		Use:     a.use + " (--nir NIR | --account-id ID)",
		Short:   a.short,
		Long:    a.long + "\n\nSent from the back-office channel, as an adviser. Exit status: 0 when done, 1 when refused.",
		Example: a.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case (nir == "") == (accountID == ""):
				return usagef("name the account with --nir or --account-id (one of them)")
			case nir != "":
				n, err := domain.ParseNIR(nir)
				if err != nil {
					return usagef("--nir: le numéro de sécurité sociale %v", err)
				}
				body["nir"] = n
			default:
				body["account_id"] = accountID
			}
			nc, prefix, err := connect(cmd, asBackoffice)
			if err != nil {
				return err
			}
			defer nc.Close()
			rep, err := newClient(nc, prefix, "backoffice", timeout).send(cmd.Context(), a.subject, body)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !rep.OK {
				fmt.Fprintln(out, rep.Error.Message)
				return refused
			}
			fmt.Fprintln(out, a.done(rep))
			return nil
		},
	}
	cmd.Flags().StringVar(&nir, "nir", "", "the account's NIR (13 characters, or 15 with its key; spaces allowed)")
	cmd.Flags().StringVar(&accountID, "account-id", "", "the account's id (26-character ULID)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the reply")
	if a.flags != nil {
		a.flags(cmd, body)
	}
	return cmd
}
