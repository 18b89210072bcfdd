package domain

// What a change of credentials closes (docs/rules.md, "What a change of
// credentials closes"; issue 11). Every change of a credential, of the
// address the codes go to, or of the account's standing closes what was
// opened under the old one:
//
//   - OWASP ASVS 5, V7.4.3: after a successful change or removal of an
//     authentication factor, including a password change through reset or
//     recovery, every other active session ends.
//   - OWASP Forgot Password cheat sheet: a reset token is single use and
//     dies when the password changes, however it changed.
//   - Our choice, from the same principle: a pending login, a trusted device
//     or a biometric enrolment was granted on the strength of the old
//     credentials, and a pending code was mailed to the old address.
//
// Evolve applies these closures when it folds the change's event: the change
// happened, so they happened. Each helper returns a new value and never
// writes into a slice it was given (states are shared by the cache).

// closeResetLink: the link proved the address, not the new password
// (Forgot Password cheat sheet).
func (a Account) closeResetLink() Account {
	a.Reset = nil
	return a
}

// closeLogins ends the logins waiting for their code, and the code.
func (a Account) closeLogins() Account {
	a.Logins, a.OTP = nil, nil
	return a
}

// closeFlowCodes drops both change flows' pending codes. The flows' request
// counts, failures and blocks stay: closing a code must not hand out a new
// quota.
func (a Account) closeFlowCodes() Account {
	a.PasswordChange.Code, a.EmailChange.Code = nil, nil
	return a
}

// keepOnlySession ends every session but the one with this hash (none when
// hash is empty): ASVS 5 V7.4.3.
func (a Account) keepOnlySession(hash string) Account {
	var kept []Session
	for _, s := range a.Sessions {
		if hash != "" && s.Hash == hash {
			kept = append(kept, s)
		}
	}
	a.Sessions = kept
	return a
}

// closeTrustedDevices forgets every "Se souvenir de cet appareil" token: each
// stood in for a code of a login under the old credentials.
func (a Account) closeTrustedDevices() Account {
	a.TrustedDevices = nil
	return a
}

// closeBiometrics revokes every enrolment, and with it its challenge: a
// biometric login needs no password, so an enrolment made by whoever knew
// the old one must not outlive it. The holder's "never" answer stays.
func (a Account) closeBiometrics() Account {
	a.Biometrics = nil
	return a
}

// revokeBiometric ends one device's enrolment (all of them when deviceID is
// empty) and the sessions such a device opened: the holder or an adviser
// revokes a device because it is lost or not theirs.
func (a Account) revokeBiometric(deviceID string) Account {
	revoked := func(device string) bool { return device != "" && (deviceID == "" || device == deviceID) }
	var keptDevices []BiometricDevice
	for _, b := range a.Biometrics {
		if !revoked(b.DeviceID) {
			keptDevices = append(keptDevices, b)
		}
	}
	var keptSessions []Session
	for _, s := range a.Sessions {
		if !revoked(s.Device) {
			keptSessions = append(keptSessions, s)
		}
	}
	a.Biometrics, a.Sessions = keptDevices, keptSessions
	return a
}

// closeAll is what a password reset or a deactivation closes: everything
// opened under the old credentials, sessions included.
func (a Account) closeAll() Account { return a.closeAllBut("") }

// closeAllBut is what a password change closes: everything, but the
// session that made it (kept: its hash; "" keeps none).
func (a Account) closeAllBut(kept string) Account {
	return a.closeResetLink().closeLogins().closeFlowCodes().closeTrustedDevices().closeBiometrics().keepOnlySession(kept)
}
