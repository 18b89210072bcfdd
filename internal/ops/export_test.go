package ops

import "time"

// SetClock makes s's shared checks read now instead of time.Now; call it
// before s serves.
func SetClock(s *Server, now func() time.Time) { s.clock = now }

// ExpireChecks makes the next probe or scrape ask every server again, as
// after CacheFor.
func ExpireChecks(s *Server) {
	s.ping.expire()
	s.stream.expire()
	for _, l := range s.lags {
		l.expire()
	}
}

// WaitingForPing is how many callers wait for the Postgres check in flight.
func WaitingForPing(s *Server) int {
	s.ping.mu.Lock()
	defer s.ping.mu.Unlock()
	return s.ping.waiting
}
