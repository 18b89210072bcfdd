package commands

import "testing"

// hasRequestID skips decoding bodies that cannot hold a request_id, and
// still finds one spelt with escapes.
func TestHasRequestID(t *testing.T) {
	for _, c := range []struct {
		body string
		want bool
	}{
		{`{"login_id":"x","code":"123456"}`, false},
		{`{"login_id":"x","code":"123456","request_id":"r1"}`, true},
		{`{"login_id":"x","request_id":""}`, false},
		{`{"login_id":"x","request\u005fid":"r1"}`, true},
		{`{"login_id":"\u0078","code":"123456"}`, false},
		{`{"login_id":"x","note":"request"}`, false},
		{`not json request_id`, false},
	} {
		if got := hasRequestID("login.otp.verify", []byte(c.body)); got != c.want {
			t.Errorf("hasRequestID(%s) = %v, want %v", c.body, got, c.want)
		}
	}
}
