package contract_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// deploy/nats/users.conf, read by nats-server's own parser, says what the
// contract says: the frontend user may request exactly the public
// commands, the backoffice user exactly the back-office ones; only the
// commands user serves commands or appends events; nobody may publish on
// the dev clock; every user reads its replies under its own inbox only
// (the admin aside).
func TestUsersConfMatchesTheContract(t *testing.T) {
	users := map[string]*server.User{}
	for _, u := range []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"} {
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), "pw")
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", "group:a")
	o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range o.Users {
		users[u.Username] = u
	}
	may := func(user, op, subject string) bool {
		u := users[user]
		if u == nil || u.Permissions == nil {
			t.Fatalf("users.conf has no user %s, or it has no permissions", user)
		}
		p := u.Permissions.Publish
		if op == "sub" {
			p = u.Permissions.Subscribe
		}
		if p == nil {
			return false
		}
		allowed := slices.ContainsFunc(p.Allow, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
		denied := slices.ContainsFunc(p.Deny, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
		return allowed && !denied
	}
	subjects := func(names []string) []string {
		var out []string
		for _, n := range names {
			out = append(out, contract.Default.Command(n))
		}
		slices.Sort(out)
		return out
	}
	for user, want := range map[string][]string{"frontend": contract.PublicCommands(), "backoffice": contract.BackOfficeCommands()} {
		// The commands each may request; the back-office also reads the
		// fraud events' stream through the JetStream API (checked below),
		// and the front-end keeps the OpenID Connect provider's buckets
		// (internal/natsusers checks those; here, that it cannot write the
		// signing keys).
		got := slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(users[user].Permissions.Publish.Allow),
			func(s string) bool {
				return strings.HasPrefix(s, "$JS.") && strings.Contains(s, contract.FraudStream) ||
					user == "frontend" && (strings.Contains(s, "OIDC_") || s == "$JS.API.INFO")
			})))
		if w := subjects(want); !slices.Equal(got, w) {
			t.Errorf("%s may publish %v\nthe contract says %v", user, got, w)
		}
	}
	if may("frontend", "pub", "$KV.OIDC_KEYS.signing") || may("frontend", "pub", "$JS.API.STREAM.DELETE.KV_OIDC_CODES") {
		t.Error("the front-end may write the provider's signing keys or delete its buckets")
	}
	// The fraud events (issue 20): appended by commands only, read by the
	// back-office and admin, never deleted by either.
	fraud := contract.Default.Fraud("fraud.source_throttled")
	for user := range users {
		if may(user, "pub", fraud) != (user == "commands") {
			t.Errorf("%s may publish %s: %v", user, fraud, may(user, "pub", fraud))
		}
		if user != "commands" && may(user, "pub", "$JS.API.STREAM.DELETE."+contract.FraudStream) {
			t.Errorf("%s may delete %s", user, contract.FraudStream)
		}
	}
	for _, user := range []string{"backoffice", "admin"} {
		if !may(user, "pub", "$JS.API.CONSUMER.CREATE."+contract.FraudStream+".fraud_tool.auth.fraud.>") {
			t.Errorf("%s cannot read %s", user, contract.FraudStream)
		}
	}
	// The projector reads them through its own durable consumer only.
	if !may("projector", "pub", "$JS.API.CONSUMER.CREATE."+contract.FraudStream+".projector_fraud.auth.fraud.>") ||
		!may("projector", "pub", "$JS.ACK."+contract.FraudStream+".projector_fraud.1.5.5.1700000000000000000.0") {
		t.Errorf("projector cannot read %s through projector_fraud", contract.FraudStream)
	}
	if may("projector", "pub", "$JS.API.CONSUMER.CREATE."+contract.FraudStream+".fraud_tool.auth.fraud.>") ||
		may("projector", "pub", "$JS.API.CONSUMER.DELETE."+contract.FraudStream+".projector_fraud") {
		t.Errorf("projector may create another consumer on %s, or delete its own", contract.FraudStream)
	}
	event := contract.Default.Events("01M8QG8TQKRW4KX1C0B8KR11D2")
	for user := range users {
		for _, c := range contract.Commands() {
			if may(user, "sub", contract.Default.Command(c)) != (user == "commands" || user == "admin") {
				t.Errorf("%s may subscribe to %s: %v", user, contract.Default.Command(c), may(user, "sub", contract.Default.Command(c)))
			}
		}
		if may(user, "pub", event) != (user == "commands") {
			t.Errorf("%s may publish events: %v", user, may(user, "pub", event))
		}
		if may(user, "pub", contract.Default.DevClockAdvance()) {
			t.Errorf("%s may publish on the dev clock", user)
		}
		if !may(user, "sub", "_INBOX."+user+".x1") {
			t.Errorf("%s may not read its replies on _INBOX.%s.>", user, user)
		}
		for other := range users {
			if other != user && user != "admin" && may(user, "sub", "_INBOX."+other+".x1") {
				t.Errorf("%s may read %s's replies", user, other)
			}
		}
		if may(user, "pub", "$JS.API.STREAM.DELETE."+contract.EventsStream) {
			t.Errorf("%s may delete %s", user, contract.EventsStream)
		}
	}
	if users["commands"].Permissions.Response == nil || users["commands"].Permissions.Response.MaxMsgs != 1 {
		t.Errorf("the commands user answers requests with allow_responses (one reply each): %+v", users["commands"].Permissions.Response)
	}
	if !may("notifier", "pub", contract.Default.DeadLetters("notifier")) {
		t.Error("the notifier may not publish its dead letters")
	}
}
