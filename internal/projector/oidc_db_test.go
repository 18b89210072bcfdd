package projector

import (
	"context"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// The OpenID Connect read model on Postgres (issue 18): each
// oidc.authorized and oidc.token_issued is one row of
// auth.oidc_authorizations with its client, scopes, acr, amr and time, in
// whatever batches the events come; the other events add none, and the
// account's version still moves.
func TestOIDCReadModelOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	acc := "01HOIDC0000000000000000000"
	md := events.Metadata{Channel: "web", ClientIP: "198.51.100.4"}
	envs := []events.Envelope{
		events.Wrap(acc, events.AccountRegistered{NIRHash: "n", EmailSealed: "s", MaskedEmail: "v***@y***.fr",
			EmailValidated: true, PasswordHash: "h", Affiliation: "active", IdentitySealed: "v1.x", At: t0}, t0, events.Metadata{Channel: "backoffice"}),
		events.Wrap(acc, events.OIDCAuthorized{ClientID: "fc-demo", Scopes: []string{"openid", "profile", "birth"}, ACR: "eidas1",
			AMR: []string{"pwd", "otp"}, AuthTime: t0.Add(time.Minute), At: t0.Add(2 * time.Minute)}, t0.Add(2*time.Minute), md),
		events.Wrap(acc, events.OIDCTokenIssued{ClientID: "fc-demo", Scopes: []string{"openid", "profile"}, ACR: "eidas1",
			At: t0.Add(3 * time.Minute)}, t0.Add(3*time.Minute), md),
		events.Wrap(acc, events.OIDCAuthorized{ClientID: "portail", Scopes: []string{"openid"}, ACR: "eidas1",
			AMR: []string{"hwk"}, AuthTime: t0.Add(time.Minute), At: t0.Add(4 * time.Minute)}, t0.Add(4*time.Minute), md),
	}
	recs := records(envs)
	// Two batches: the rows of each land, in stream order.
	for _, part := range [][]record{recs[:2], recs[2:]} {
		if _, err := x.applyBatch(ctx, conn, part, noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT seq, account_id, kind, client_id, array_to_string(scopes, ','), acr, coalesce(array_to_string(amr, ','), '-'), at
		FROM auth.oidc_authorizations ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		seq                                 int64
		acc, kind, client, scopes, acr, amr string
		at                                  time.Time
	}
	want := []row{
		{2, acc, "authorized", "fc-demo", "openid,profile,birth", "eidas1", "pwd,otp", t0.Add(2 * time.Minute)},
		{3, acc, "token_issued", "fc-demo", "openid,profile", "eidas1", "-", t0.Add(3 * time.Minute)},
		{4, acc, "authorized", "portail", "openid", "eidas1", "hwk", t0.Add(4 * time.Minute)},
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.acc, &r.kind, &r.client, &r.scopes, &r.acr, &r.amr, &r.at); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].seq != want[i].seq || got[i].acc != want[i].acc || got[i].kind != want[i].kind || got[i].client != want[i].client ||
			got[i].scopes != want[i].scopes || got[i].acr != want[i].acr || got[i].amr != want[i].amr || !got[i].at.Equal(want[i].at) {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := count(t, conn, "SELECT version FROM auth.accounts WHERE account_id = $1", acc); n != 4 {
		t.Errorf("the account's version is %d, want 4 (every event moves it)", n)
	}
}
