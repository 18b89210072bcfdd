// Package deploy holds, for the programs that run them on this machine,
// the deployment files that must not drift from what they run: the NATS
// users of nats/users.conf, which the local cluster (`make cluster`,
// internal/app/cluster.go) gives its nodes as the production nodes get
// them. The file stays the one source: edit nats/users.conf, never a
// copy.
package deploy

import _ "embed"

// NATSUsers is nats/users.conf as built into the program: every NATS user
// (commands, projector, notifier, frontend, backoffice, admin), its
// permissions, and its password from the server's environment,
// NATS_PASSWORD_<USER>.
//
//go:embed nats/users.conf
var NATSUsers []byte
