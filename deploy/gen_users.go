//go:build ignore

// gen_users writes nats/users.conf and nats/users-<N>.conf from
// internal/natsusers/users.conf.tmpl: `go generate ./deploy`.
package main

import (
	"log"

	"github.com/ameli-auth/authsvc/internal/natsusers"
)

func main() {
	if err := natsusers.WriteCommitted("nats"); err != nil {
		log.Fatal(err)
	}
}
