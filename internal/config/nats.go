package config

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// NATSClient is how a component connects to a NATS it did not start: who
// it is (a user and its password, or a .creds file) and how it checks the
// server (TLS against a CA, optionally with a client certificate). The
// users and what each may do are in deploy/nats/users.conf;
// docs/operations.md, "NATS users and permissions" and "TLS", says how to
// run them. All empty: an anonymous connection, as dev mode's embedded
// server takes.
type NATSClient struct {
	User     string // AUTH_NATS_USER
	Password string // AUTH_NATS_PASSWORD or AUTH_NATS_PASSWORD_FILE
	Creds    string // AUTH_NATS_CREDS: path of a .creds file (user JWT and nkey seed)
	TLSCA    string // AUTH_NATS_TLS_CA: PEM file; set, the connection must be TLS and the server verified
	TLSCert  string // AUTH_NATS_TLS_CERT and AUTH_NATS_TLS_KEY: PEM files, mutual TLS
	TLSKey   string
	// InboxPrefix is AUTH_NATS_INBOX_PREFIX as set; Inbox is the one used.
	InboxPrefix string
}

// InboxRoot is the root of every reply subject: the commands service
// answers only requests whose reply subject is under it
// (contract.IsInbox), and every inbox prefix must be under it.
const InboxRoot = contract.InboxRoot

// Inbox is the prefix of the connection's reply subjects (nats.go's
// CustomInboxPrefix): AUTH_NATS_INBOX_PREFIX, else _INBOX.<user> for a
// user, else "" (nats.go's own _INBOX). A user's permissions let it
// subscribe to its own prefix only, so it cannot read the replies sent to
// another user (deploy/nats/users.conf).
func (n NATSClient) Inbox() string {
	if n.InboxPrefix != "" {
		return n.InboxPrefix
	}
	if n.User != "" {
		return InboxRoot + "." + n.User
	}
	return ""
}

// check refuses the combinations that cannot work, naming the variables.
// Errors never carry the password.
func (n NATSClient) check() error {
	switch {
	case n.User != "" && n.Creds != "":
		return fmt.Errorf("%s and %s are both set: a connection is either a user with a password or a .creds file", EnvNATSUser, EnvNATSCreds)
	case n.User != "" && n.Password == "":
		return fmt.Errorf("%s is set (%q) but not its password: set %s or %s_FILE", EnvNATSUser, n.User, EnvNATSPassword, EnvNATSPassword)
	case n.User == "" && n.Password != "":
		return fmt.Errorf("%s (or %s_FILE) is set without %s", EnvNATSPassword, EnvNATSPassword, EnvNATSUser)
	case (n.TLSCert == "") != (n.TLSKey == ""):
		return fmt.Errorf("%s and %s go together (mutual TLS): set both or neither", EnvNATSTLSCert, EnvNATSTLSKey)
	case n.Password == Placeholder:
		// .env.example's value passes compose's ${VAR:?} check; left as is
		// on every user, any component could log in as the admin.
		return fmt.Errorf("%s is still %q, the placeholder of .env.example: give each NATS user its own password", EnvNATSPassword, Placeholder)
	}
	if n.InboxPrefix != "" {
		if err := checkInbox(n.InboxPrefix); err != nil {
			return fmt.Errorf("%s: %w", EnvNATSInboxPrefix, err)
		}
	} else if n.User != "" {
		if err := checkInbox(n.Inbox()); err != nil {
			return fmt.Errorf("%s %q cannot name an inbox (%v): set %s", EnvNATSUser, n.User, err, EnvNATSInboxPrefix)
		}
	}
	return nil
}

// Placeholder is the value .env.example gives every password: a component
// refuses to start with it.
const Placeholder = "change-me"

// checkInbox accepts _INBOX or a subject under _INBOX. without wildcards.
func checkInbox(p string) error {
	if p != InboxRoot && !strings.HasPrefix(p, InboxRoot+".") {
		return fmt.Errorf("%q is not %s nor under %s.: the commands service answers no other reply subject", p, InboxRoot, InboxRoot)
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*>") || strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
			return fmt.Errorf("%q is not a subject without wildcards", p)
		}
	}
	return nil
}

// LoadNATSClient reads the NATS client settings from the environment
// alone, for authctl, whose other settings are its own flags.
func LoadNATSClient() (NATSClient, error) {
	pw, err := readSecret(EnvNATSPassword)
	if err != nil {
		return NATSClient{}, err
	}
	n := NATSClient{
		User: Lookup(EnvNATSUser), Password: pw, Creds: Lookup(EnvNATSCreds),
		TLSCA: Lookup(EnvNATSTLSCA), TLSCert: Lookup(EnvNATSTLSCert), TLSKey: Lookup(EnvNATSTLSKey),
		InboxPrefix: Lookup(EnvNATSInboxPrefix),
	}
	if err := n.check(); err != nil {
		return NATSClient{}, err
	}
	return n, nil
}
