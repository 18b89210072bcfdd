package cli

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsusers"
)

func newNATSCmd() *cobra.Command {
	parent := &cobra.Command{Use: "nats", Short: "The NATS servers' configuration the service needs"}
	users := &cobra.Command{
		Use:   "users",
		Short: "Print the NATS users' configuration (users.conf) for a number of partitions",
		Long: `Prints users.conf, the NATS users of the service (commands, projector,
notifier, frontend, backoffice, admin) and what each may do, for the number of
partitions of the events (--partitions, or AUTH_PARTITIONS; default 1) and the
subject prefix (--subject-prefix). NATS wildcards match whole tokens, so each
partition's stream and buckets are named one by one: the file differs with the
number of partitions, and every nats-server node of a deployment needs the one
of its AUTH_PARTITIONS. deploy/nats holds it for the usual numbers
(users.conf for 1, users-<N>.conf); docs/operations.md says how to run it.`,
		Example: `  authctl nats users --partitions 4 > deploy/nats/users-4.conf
  authctl nats users --partitions 5 --subject-prefix ameli > /etc/nats/users.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			prefix, _ := cmd.Flags().GetString("subject-prefix")
			flag, _ := cmd.Flags().GetString("partitions")
			n := 1
			if flag = strings.TrimSpace(flag); flag != "" {
				var err error
				if n, err = strconv.Atoi(flag); err != nil || n < 1 || n > contract.MaxPartitions {
					return usagef("--partitions (AUTH_PARTITIONS): %q is not a number from 1 to %d", flag, contract.MaxPartitions)
				}
			}
			b, err := natsusers.Conf(contract.Layout{Prefix: prefix, Partitions: n})
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	parent.AddCommand(users)
	return parent
}
