package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
)

func newRequestCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "req SUBJECT [JSON]",
		Short: "Send one command as a front-end would and print the reply",
		Long: `Send one command (the subject after "<prefix>.cmd.", e.g. login.password)
with a JSON body (from the argument, or standard input when absent or "-"),
and print the service's reply, indented.`,
		Example: `  authctl req account.register '{"nir":"2690549588157","email":"valerie@yahoo.fr","password":"Motdepasse-2023","email_validated":true,"affiliation":"active"}'
  authctl req login.password '{"nir":"2 69 05 49 588 157","password":"Motdepasse-2023"}'
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
			url, _ := cmd.Flags().GetString("nats-url")
			prefix, _ := cmd.Flags().GetString("subject-prefix")
			nc, err := nats.Connect(url, nats.Name("authctl"))
			if err != nil {
				return fmt.Errorf("connect to %s: %w", url, err)
			}
			defer nc.Close()
			subject := contract.Subjects(prefix).Command(args[0])
			if args[0] == contract.CmdDevClockAdvance {
				subject = contract.Subjects(prefix).DevClockAdvance()
			}
			msg, err := nc.Request(subject, body, timeout)
			if err != nil {
				return fmt.Errorf("request %s: %w", subject, err)
			}
			var out bytes.Buffer
			if json.Indent(&out, msg.Data, "", "  ") != nil {
				out.Write(msg.Data)
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the reply")
	return cmd
}
