package commands_test

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// NATS lets a requester name any reply subject, and the service's NATS user
// may publish events: a request whose reply subject is an event subject
// would have its reply appended to AUTH_EVENTS, where deny delete keeps it
// for ever. Such a request is dropped, neither run nor answered, and says
// so in the log; a request with an inbox under _INBOX. (any user's,
// deploy/nats/users.conf) is served.
func TestRequestWithAReplySubjectOutsideTheInboxesIsDropped(t *testing.T) {
	log := &testwait.Log{}
	h := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.Logger = slog.New(log.Handler()) })
	acc := h.Register("1 84 12 76 451 089 46", "a@exemple.fr", "cheval-agrafe-batterie")
	before := h.StreamCount()
	forged := contract.Default.Events(acc)
	body, _ := json.Marshal(obj{"nir": "1 84 12 76 451 089 46", "password": "wrong-password-here"})
	for i, reply := range []string{forged, "auth.dlq.notifier", "_INBOX", "_INBOXES.x", ""} {
		msg := &nats.Msg{Subject: contract.Default.Command(contract.CmdLoginPassword), Reply: reply, Data: body}
		if err := h.NC.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, "the drop of request "+reply, 5*time.Second, func() bool {
			return log.Count("request dropped: its reply subject is not an inbox", "command=login.password") == i+1
		})
	}
	if got := h.StreamCount(); got != before {
		t.Fatalf("the stream went from %d to %d messages: a dropped request was run or its reply appended", before, got)
	}
	// Not run: no wrong password was counted. The next right login is
	// not slowed or refused by them.
	if rep := h.Req(contract.CmdLoginPassword, obj{"nir": "1 84 12 76 451 089 46", "password": "cheval-agrafe-batterie"}); !rep.OK {
		t.Fatalf("login after the dropped requests: %+v", rep.Error)
	}
	// An inbox of any user is served, the default nats.go one as a
	// custom prefix (AUTH_NATS_INBOX_PREFIX).
	inbox := "_INBOX.frontend." + nats.NewInbox()[len("_INBOX."):]
	sub, err := h.NC.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.NC.PublishRequest(contract.Default.Command(contract.CmdSessionCheck), inbox, []byte(`{"session":"x"}`)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no reply on a user's inbox: %v", err)
	}
	var rep contract.AnyReply
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.OK {
		t.Fatalf("reply %s", m.Data)
	}
}
