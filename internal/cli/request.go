package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
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
			nc, prefix, err := connect(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			subject := prefix + ".cmd." + args[0]
			if args[0] == "dev.clock.advance" {
				subject = prefix + "." + args[0]
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
