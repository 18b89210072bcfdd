package notifier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/mail"
)

// BenchmarkNotifierMailsPerSecond drains b.N security-code events already
// in the stream to the local SMTP catcher, through the whole path: pull,
// decode, open the sealed values, claim in Postgres, render, SMTP, mark
// sent, ack. The figure is mails/s.
//
//	go test -run '^$' -bench BenchmarkNotifier -benchtime 2000x ./internal/notifier/
func BenchmarkNotifierMailsPerSecond(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			h := newHarness(b, clock.NewFixed(t0.Add(time.Minute)))
			ctx := context.Background()
			for i := range b.N {
				acct := events.NewID(t0)
				env := events.Wrap(acct, events.OTPIssued{LoginID: acct, CodeHash: "h",
					CodeSealed: h.seal(fmt.Sprintf("%06d", i%1000000), acct), ToSealed: h.seal("bench@example.fr", acct),
					IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}, t0, events.Metadata{})
				if _, err := h.events.Append(ctx, acct, 0, env, env.ID); err != nil {
					b.Fatal(err)
				}
			}
			cfg := h.testConfig()
			cfg.Workers = workers
			sender, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: h.catcher.Addr(), TLS: mail.TLSNone, MaxConns: workers})
			if err != nil {
				b.Fatal(err)
			}
			defer sender.Close()
			cfg.Sender = sender
			b.ResetTimer()
			start := time.Now()
			h.start(cfg)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := h.catcher.WaitCount(wctx, b.N); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "mails/s")
		})
	}
}
