package domain

import "time"

// OpenSession returns the session with this token hash if it is open at
// now. A session lives the policy's SessionLifetime from its login and no
// longer: using it does not extend it (no sliding expiry), so what
// session.check answers is what the login decided.
func (a Account) OpenSession(hash string, now time.Time) (Session, bool) {
	for _, s := range a.Sessions {
		if equalHash(s.Hash, hash) && now.Before(s.ExpiresAt) {
			return s, true
		}
	}
	return Session{}, false
}
