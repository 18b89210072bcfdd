// Package deploy holds the deployment files (docker-compose.yml mounts
// them): nats/nats-server.conf, and the NATS users of nats/users.conf (one
// partition) and nats/users-<N>.conf (AUTH_PARTITIONS=N). The users files
// are generated from internal/natsusers/users.conf.tmpl, the one source
// that the local cluster (internal/app/cluster.go) and `authctl nats
// users` render too: edit the template, then `go generate ./deploy`;
// internal/natsusers's test keeps the files equal to it.
package deploy

//go:generate go run gen_users.go
