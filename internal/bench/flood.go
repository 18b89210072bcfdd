package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// flood measures what a flood of wrong passwords on one account costs
// (issue 11, kind 4): Concurrency clients run full web logins on their own
// accounts while FloodAttackers goroutines send wrong passwords to one
// account, each waiting for its reply and sending again, for the whole
// window. In alternating rounds, a quiet window (the clients alone) and a
// flood window (a fresh attacked account each round) of the same length,
// so the machine's other work weighs on both alike. Figures:
//
//   - flood_hashes: the most argon2id computations spent on one attacked
//     account in a round, counted by the commands' hash observer (the
//     seed's rule needs 3: the third failure blocks);
//   - flood_login_p99_ratio: the clients' login-flow p99 during the flood
//     windows over their p99 in the quiet windows.
func (r *runner) flood(ctx context.Context) error {
	s := r.sizes
	rounds := max(1, s.Rounds)
	var attacked atomic.Value
	attacked.Store("")
	var spent atomic.Int64
	r.hashObserver = func(key string) {
		if key == attacked.Load().(string) {
			spent.Add(1)
		}
	}
	defer func() { r.hashObserver = nil }()
	l, err := r.startLoginLoad(ctx)
	if err != nil {
		return err
	}
	defer l.stop()
	attackers, err := r.newClient(4)
	if err != nil {
		return err
	}
	targets, err := r.importAccounts(ctx, attackers, rounds, rounds, r.opts.Policy.Argon2)
	if err != nil {
		return fmt.Errorf("create attacked accounts: %w", err)
	}
	l.resume()
	if err := sleep(ctx, s.Warmup); err != nil {
		return err
	}
	l.pause()

	var quiet, flooded []time.Duration
	var spentRounds, p99Rounds []float64
	maxSpent, attacks, refused := int64(0), int64(0), int64(0)
	per := s.FloodTime / time.Duration(rounds)
	for round := range rounds {
		// Quiet window.
		mark := len(l.lat.all())
		if _, err := l.timedWindow(ctx, s.Settle, per); err != nil {
			return err
		}
		quietRound := l.lat.all()[mark:]
		quiet = append(quiet, quietRound...)

		// Flood window, on a fresh account.
		target := targets[round]
		attacked.Store(target.id)
		spent.Store(0)
		mark = len(l.lat.all())
		l.resume()
		if err := sleep(ctx, s.Settle); err != nil {
			return err
		}
		fctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var sent, locked atomic.Int64
		for range s.FloodAttackers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					rep, err := attackers.do(fctx, "login.password", body{RequestID: requestID(), Channel: "web", NIR: target.nir, Password: "pas-le-bon-mot"})
					if err != nil {
						continue // the window closed under it
					}
					sent.Add(1)
					if !rep.OK && rep.Error.Code == domain.CodeAccountLocked {
						locked.Add(1)
					}
				}
			}()
		}
		err := sleep(ctx, per)
		stop()
		wg.Wait()
		l.pause()
		if err != nil {
			return err
		}
		floodRound := l.lat.all()[mark:]
		flooded = append(flooded, floodRound...)
		if err := l.failed(); err != nil {
			return err
		}
		maxSpent = max(maxSpent, spent.Load())
		spentRounds = append(spentRounds, float64(spent.Load()))
		if q := percentile(quietRound, 0.99); q > 0 {
			p99Rounds = append(p99Rounds, float64(percentile(floodRound, 0.99))/float64(q))
		}
		attacks, refused = attacks+sent.Load(), refused+locked.Load()
		r.progress("flood: round %d of %d: %d hashes spent on the attacked account; %d wrong passwords sent, %d answered account_locked",
			round+1, rounds, spent.Load(), sent.Load(), locked.Load())
	}
	d := &r.res.Details
	d.FloodQuietP99, d.FloodP99 = percentile(quiet, 0.99), percentile(flooded, 0.99)
	d.FloodQuietFlows, d.FloodFlows = len(quiet), len(flooded)
	d.FloodAttacks, d.FloodLocked, d.FloodClients = int(attacks), int(refused), l.workers
	r.res.FloodHashes = float64(maxSpent)
	r.rounds("flood_hashes", spentRounds)
	r.rounds("flood_login_p99_ratio", p99Rounds)
	if d.FloodQuietP99 > 0 {
		r.res.FloodLoginP99Ratio = float64(d.FloodP99) / float64(d.FloodQuietP99)
	}
	r.progress("flood: at most %d hashes per attacked account; login p99 %s quiet, %s under the flood (ratio %.2f)",
		maxSpent, ms(d.FloodQuietP99), ms(d.FloodP99), r.res.FloodLoginP99Ratio)
	return nil
}
