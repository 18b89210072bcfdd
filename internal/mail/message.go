package mail

import (
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email ready to send.
type Message struct {
	From      string // "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>"
	To        string
	MessageID string // without angle brackets; see MessageID
	Date      time.Time
	Subject   string
	Text      string
	HTML      string
}

// MessageID derives a Message-ID from the event that caused the mail, so a
// mail sent again for the same event (the one repeat window the notifier
// documents) carries the same Message-ID, which many mailbox providers
// use to show it once. The domain is the sender's.
func MessageID(eventID string, kind Kind, from string) string {
	domain := "ameli-auth.invalid"
	if a, err := netmail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at >= 0 && at < len(a.Address)-1 {
			domain = a.Address[at+1:]
		}
	}
	return fmt.Sprintf("%s.%s@%s", eventID, strings.ReplaceAll(string(kind), "_", "-"), domain)
}

// userAgent names the sender software in the mails' headers.
const userAgent = "ameli-auth notifier"

// build makes the go-mail message: multipart/alternative, text then HTML
// (clients show the last part they can render), UTF-8, quoted-printable.
func (m Message) build() (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", m.From, err)
	}
	if err := msg.To(m.To); err != nil {
		// The address is not put in the error: errors reach logs.
		return nil, fmt.Errorf("mail: invalid recipient address")
	}
	msg.Subject(m.Subject)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	} else {
		msg.SetMessageID()
	}
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	msg.SetUserAgent(userAgent)
	// RFC 3834: an automatic message; vacation responders stay quiet.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Auto-Response-Suppress", "All")
	msg.SetGenHeader("Content-Language", "fr")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}
