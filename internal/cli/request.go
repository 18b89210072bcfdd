package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

func newRequestCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "req SUBJECT [JSON]",
		Short: "Send one command as a front-end would and print the reply",
		Long: `Send one command (the subject after "<prefix>.cmd.", e.g. login.password)
with a JSON body (from the argument, or standard input when absent or "-"),
and print the service's reply, indented. An unknown field is refused with
its name; the examples below show every command's fields.

Exit status: 0 when the reply says "ok": true; 1 when it says "ok": false
(the reply, with its error code and French message, is printed all the
same), when no reply comes, or when it is not JSON.`,
		Example: `  authctl req account.register '{"nir":"2690549588157","email":"valerie@yahoo.fr","password":"Motdepasse-2023","email_validated":true,"affiliation":"active","channel":"backoffice"}'
  authctl req login.password '{"nir":"2 69 05 49 588 157","password":"Motdepasse-2023"}'
  authctl req login.otp.send '{"login_id":"LOGIN_ID"}'
  authctl req login.otp.verify '{"login_id":"LOGIN_ID","code":"123456","remember_device":false}'
  authctl req session.logout '{"session":"TOKEN"}'
  authctl req password.change.start '{"session":"TOKEN"}'
  authctl req password.change.verify_code '{"session":"TOKEN","code":"1234"}'
  authctl req password.change.complete '{"session":"TOKEN","new_password":"jument-trombone-cerise"}'
  authctl req password.reset.request '{"nir":"2690549588157"}'
  authctl req password.reset.complete '{"token":"TOKEN","new_password":"jument-trombone-cerise"}'
  authctl req email.change '{"session":"TOKEN","new_email":"valerie@exemple.fr"}'
  authctl req email.confirm '{"session":"TOKEN","code":"123456"}'
  authctl req account.unlock '{"nir":"2690549588157","channel":"backoffice"}'
  authctl req account.deactivate '{"account_id":"ACCOUNT_ID","reason":"doublon","channel":"backoffice"}'
  authctl req account.set_affiliation '{"nir":"2690549588157","affiliation":"active","channel":"backoffice"}'
  authctl req account.revoke_biometrics '{"nir":"2690549588157","channel":"backoffice"}'
  authctl req dev.clock.advance '{"seconds":900}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			if len(args) == 2 && args[1] != "-" {
				body = []byte(args[1])
			} else {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("read body: %w", err)
				}
				body = b
			}
			// Who sends it on the local cluster: the back-office its
			// commands, a front-end the others.
			as := asFrontend
			if contract.IsBackOffice(args[0]) {
				as = asBackoffice
			}
			nc, prefix, err := connect(cmd, as)
			if err != nil {
				return err
			}
			defer nc.Close()
			subject := contract.Subjects(prefix).Command(args[0])
			if args[0] == contract.CmdDevClockAdvance {
				subject = contract.Subjects(prefix).DevClockAdvance()
			}
			ctx, span := startSend(cmd.Context(), subject, args[0])
			defer span.End()
			req := nats.NewMsg(subject)
			req.Data = body
			tracing.Inject(ctx, req.Header)
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			msg, err := nc.RequestMsgWithContext(rctx, req)
			if err != nil {
				return fmt.Errorf("request %s: %w", subject, err)
			}
			var out bytes.Buffer
			if json.Indent(&out, msg.Data, "", "  ") != nil {
				out.Write(msg.Data)
			}
			out.WriteByte('\n')
			if _, err := cmd.OutOrStdout().Write(out.Bytes()); err != nil {
				return err
			}
			var rep struct {
				OK *bool `json:"ok"`
			}
			if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.OK == nil {
				return &exitError{code: 1, msg: "the reply is not the service's JSON object with \"ok\""}
			}
			if !*rep.OK {
				return silentExit(1) // the reply says why
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the reply")
	return cmd
}
