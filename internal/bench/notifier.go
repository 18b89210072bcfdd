package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/notifier"
)

// notifier measures mails per second: NotifierMails security-code events
// (one account each) are in a stream of their own before the clock starts;
// then the notifier, configured as cmd/notifier is by default (one worker,
// two SMTP connections), drains them through its whole path (pull, decode,
// open the sealed code and address, claim in Postgres, render, SMTP, mark
// sent, ack) to the in-process mail catcher.
func (r *runner) notifier(ctx context.Context) error {
	dbURL, err := r.database(ctx)
	if err != nil {
		return err
	}
	cfg := r.phaseStream("mail")
	store, err := r.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	n := r.sizes.NotifierMails
	now := time.Now()
	t := time.Now()
	err = parallel(ctx, n, 32, func(ctx context.Context, i int) error {
		acct := events.NewID(now)
		code := fmt.Sprintf("%06d", i%1_000_000)
		env := events.Wrap(acct, events.OTPIssued{LoginID: events.NewID(now), CodeHash: "h", CodeSealed: r.keys.Seal(code, acct),
			ToSealed: r.keys.Seal(fmt.Sprintf("bench.%d@exemple.fr", i), acct), RequestsLastHour: 1,
			IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}, now, events.Metadata{Channel: "web"})
		return retryTimeouts(ctx, &r.retries, func() error { // the message id makes a retry safe
			_, err := store.Append(ctx, acct, 0, env, env.ID)
			return err
		})
	})
	if err != nil {
		return err
	}
	r.progress("notifier: %d code events appended in %s", n, time.Since(t).Round(time.Millisecond))

	r.mem.begin() // the notifier's peak, not the appenders'
	c, err := catcher.Start(catcher.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	sender, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: c.Addr(), TLS: mail.TLSNone})
	if err != nil {
		return err
	}
	defer sender.Close()
	st, err := notifier.OpenStore(ctx, dbURL, r.opts.Logger)
	if err != nil {
		return err
	}
	defer st.Close()
	subConn, err := r.connect("authbench-notifier-subscriber")
	if err != nil {
		return err
	}
	nt, err := notifier.New(notifier.Config{Prefix: cfg.Prefix, Stream: cfg.Stream, Consumer: "authbench_notifier",
		DLQStream: cfg.Stream + "_DLQ", JS: r.js, SubscriberConn: subConn, Store: st, Keys: r.keys, Sender: sender,
		Logger: r.opts.Logger, From: r.opts.From,
		PublicURL: r.opts.PublicURL})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.streams = append(r.streams, cfg.Stream+"_DLQ")
	r.mu.Unlock()
	if err := notifier.EnsureDLQStream(ctx, r.js, notifier.DLQStreamConfig{Prefix: cfg.Prefix, Stream: cfg.Stream + "_DLQ"}); err != nil {
		return err
	}
	start := time.Now()
	if err := nt.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = nt.Stop(context.Background()) }()
	err = waitProgress(ctx, time.Minute, func() uint64 { return uint64(c.Count()) }, uint64(n))
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("%d mails of %d: %w", c.Count(), n, err)
	}
	r.res.NotifierMailsPerS = float64(n) / took.Seconds()
	r.res.Details.Mails, r.res.Details.MailsTook = n, took
	r.progress("notifier: %d mails in %s: %.0f mails/s", n, took.Round(time.Millisecond), r.res.NotifierMailsPerS)
	return nil
}
