package projector

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ameli-auth/authsvc/internal/projections"
)

// executor is the generic handler: it runs a Plan of statements against the
// tables of one schema (the live one, or a rebuild's shadow), set-based:
// one multi-row upsert and one multi-row update for the accounts, one COPY
// for the attempts, whatever the number of events.
type executor struct {
	schema         string
	t              tableNames
	sql            sqlTexts
	stagingColumns []string
	batches        atomic.Int64 // numbers the batches in the staging table
	partition      int          // the partition of the events applied (0 with one)
}

// stagingTable holds a batch's account changes during its transaction.
const stagingTable = "pg_temp.projector_account_changes"

type tableNames struct {
	accounts, attempts, trusted, biometric, checkpoint string
}

// fraudSQL are the statements of the fraud read model: counters that add a
// batch's counts (projections.FraudCounts) and the credential changes.
type fraudSQL struct {
	bySource, byDevice, byHour, userAgents, changes string
	oidc                                            string // auth.oidc_authorizations (issue 18)
}

type sqlTexts struct {
	createStaging, copyStaging, copyAttempts              string
	createAccounts, updateAccounts, countDevices          string
	trustDevice, pruneTrusted, forgetDevices              string
	enrollBiometric, pruneBiometric, revokeBiometric      string
	lockCheckpoint, updateCheckpoint, readCheckpointNoLck string
	ensureCheckpoint                                      string
	fraud                                                 fraudSQL
}

// accountColumn describes one settable column of auth.accounts.
type accountColumn struct {
	name  string
	field projections.Field
	kind  colKind
	get   func(r *projections.AccountRow) any // string, bool, int or time.Time
}

type colKind int

const (
	kText     colKind = iota // NOT NULL text
	kNullText                // "" is NULL
	kBool
	kInt
	kTime // zero is NULL
)

func (k colKind) sqlType() string {
	switch k {
	case kBool:
		return "boolean"
	case kInt:
		return "integer"
	case kTime:
		return "timestamptz"
	}
	return "text"
}

// accountColumns: the order of the unnest arguments. Every settable
// projections.Field appears exactly once (a test checks it).
var accountColumns = []accountColumn{
	{"status", projections.FieldStatus, kText, func(r *projections.AccountRow) any { return r.Status }},
	{"affiliation", projections.FieldAffiliation, kText, func(r *projections.AccountRow) any { return r.Affiliation }},
	{"masked_email", projections.FieldMaskedEmail, kNullText, func(r *projections.AccountRow) any { return r.MaskedEmail }},
	{"email_validated", projections.FieldEmailValidated, kBool, func(r *projections.AccountRow) any { return r.EmailValidated }},
	{"email_changed_at", projections.FieldEmailChangedAt, kTime, func(r *projections.AccountRow) any { return r.EmailChangedAt }},
	{"blocked_until", projections.FieldBlockedUntil, kTime, func(r *projections.AccountRow) any { return r.BlockedUntil }},
	{"block_reason", projections.FieldBlockReason, kNullText, func(r *projections.AccountRow) any { return r.BlockReason }},
	{"password_failures", projections.FieldPasswordFailures, kInt, func(r *projections.AccountRow) any { return r.PasswordFailures }},
	{"otp_failures", projections.FieldOTPFailures, kInt, func(r *projections.AccountRow) any { return r.OTPFailures }},
	{"otp_requests_last_hour", projections.FieldOTPRequestsLastHour, kInt, func(r *projections.AccountRow) any { return r.OTPRequestsLastHour }},
	{"otp_last_requested_at", projections.FieldOTPLastRequestedAt, kTime, func(r *projections.AccountRow) any { return r.OTPLastRequestedAt }},
	{"password_changed_at", projections.FieldPasswordChangedAt, kTime, func(r *projections.AccountRow) any { return r.PasswordChangedAt }},
	{"password_changed_by", projections.FieldPasswordChangedBy, kNullText, func(r *projections.AccountRow) any { return r.PasswordChangedBy }},
	{"password_reset_requested_at", projections.FieldPasswordResetRequestedAt, kTime, func(r *projections.AccountRow) any { return r.PasswordResetRequestedAt }},
	{"password_change_blocked_until", projections.FieldPasswordChangeBlockedUntil, kTime, func(r *projections.AccountRow) any { return r.PasswordChangeBlockedUntil }},
	{"password_change_block_reason", projections.FieldPasswordChangeBlockReason, kNullText, func(r *projections.AccountRow) any { return r.PasswordChangeBlockReason }},
	{"email_change_blocked_until", projections.FieldEmailChangeBlockedUntil, kTime, func(r *projections.AccountRow) any { return r.EmailChangeBlockedUntil }},
	{"email_change_block_reason", projections.FieldEmailChangeBlockReason, kNullText, func(r *projections.AccountRow) any { return r.EmailChangeBlockReason }},
	{"last_login_at", projections.FieldLastLoginAt, kTime, func(r *projections.AccountRow) any { return r.LastLoginAt }},
	{"last_login_channel", projections.FieldLastLoginChannel, kNullText, func(r *projections.AccountRow) any { return r.LastLoginChannel }},
	{"last_login_method", projections.FieldLastLoginMethod, kNullText, func(r *projections.AccountRow) any { return r.LastLoginMethod }},
	{"biometric_offer", projections.FieldBiometricOffer, kNullText, func(r *projections.AccountRow) any { return r.BiometricOffer }},
	{"deactivated_at", projections.FieldDeactivatedAt, kTime, func(r *projections.AccountRow) any { return r.DeactivatedAt }},
	{"deactivation_reason", projections.FieldDeactivationReason, kNullText, func(r *projections.AccountRow) any { return r.DeactivationReason }},
	{"reactivated_at", projections.FieldReactivatedAt, kTime, func(r *projections.AccountRow) any { return r.ReactivatedAt }},
	{"registered_at", projections.FieldRegisteredAt, kTime, func(r *projections.AccountRow) any { return r.RegisteredAt }},
}

var attemptColumns = []string{"partition", "event_id", "seq", "account_id", "at", "channel", "client_ip", "user_agent",
	"step", "outcome", "reason", "method", "device", "failures", "blocked_until", "login_ref"}

func newExecutor(schema string) *executor {
	q := func(table string) string { return pgx.Identifier{schema, table}.Sanitize() }
	t := tableNames{accounts: q("accounts"), attempts: q("login_attempts"), trusted: q("trusted_devices"),
		biometric: q("biometric_devices"), checkpoint: q("projector_checkpoint")}
	x := &executor{schema: schema, t: t}

	// Account changes are COPYed into a per-session staging table, then
	// merged by two statements: a plain INSERT ... SELECT for the accounts
	// created in the batch, and an UPDATE ... FROM for the others, which
	// writes a column only where the change's field mask has its bit. (COPY
	// then merge costs half of the same merge from unnest() arrays.)
	names := []string{"account_id"}
	defs := []string{"account_id text"}
	var sets, upd []string
	for _, c := range accountColumns {
		names = append(names, c.name)
		defs = append(defs, c.name+" "+c.kind.sqlType())
		sets = append(sets, c.name+" = EXCLUDED."+c.name)
		bit := strconv.FormatUint(uint64(c.field), 10)
		switch c.name {
		case "blocked_until", "block_reason":
			upd = append(upd, c.name+" = CASE WHEN c.mask & "+bit+" <> 0 THEN c."+c.name+
				" WHEN a.block_reason = ANY(string_to_array(c.lift_if, ',')) THEN NULL ELSE a."+c.name+" END")
		default:
			upd = append(upd, c.name+" = CASE WHEN c.mask & "+bit+" <> 0 THEN c."+c.name+" ELSE a."+c.name+" END")
		}
	}
	names = append(names, "updated_at", "version")
	defs = append(defs, "updated_at timestamptz", "version bigint", "mask bigint", "lift_if text", "is_create boolean", "recount boolean", "batch bigint")
	sets = append(sets, "updated_at = EXCLUDED.updated_at", "version = EXCLUDED.version",
		"trusted_devices = EXCLUDED.trusted_devices", "biometric_devices = EXCLUDED.biometric_devices")
	// CountDevices is folded into the same row write: every account whose
	// devices changed has a change of its own in the batch (each event
	// moves the version), and the devices were written just before.
	countTrusted := "(SELECT count(*) FROM " + t.trusted + " d WHERE d.account_id = c.account_id)"
	countBio := "(SELECT count(*) FROM " + t.biometric + " b WHERE b.account_id = c.account_id)"
	upd = append(upd, "updated_at = c.updated_at", "version = c.version",
		"trusted_devices = CASE WHEN c.recount THEN "+countTrusted+" ELSE a.trusted_devices END",
		"biometric_devices = CASE WHEN c.recount THEN "+countBio+" ELSE a.biometric_devices END")
	x.stagingColumns = append(append([]string{}, names...), "mask", "lift_if", "is_create", "recount", "batch")
	x.sql.copyStaging = "COPY " + stagingTable + " (" + strings.Join(x.stagingColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	x.sql.copyAttempts = "COPY " + t.attempts + " (" + strings.Join(attemptColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	x.sql.createStaging = "CREATE TEMP TABLE IF NOT EXISTS " + stagingTable + " (" + strings.Join(defs, ", ") + ") ON COMMIT DELETE ROWS"
	// The commit empties the table (ON COMMIT DELETE ROWS, cheaper than a
	// TRUNCATE); batches run in savepoints of one transaction (the swap's
	// catch-up) are told apart by their batch number.
	x.sql.createAccounts = "INSERT INTO " + t.accounts + " (" + strings.Join(names, ", ") + ", trusted_devices, biometric_devices)\n" +
		"SELECT " + strings.Join(names, ", ") + ",\n" +
		"  CASE WHEN c.recount THEN " + countTrusted + " ELSE 0 END, CASE WHEN c.recount THEN " + countBio + " ELSE 0 END\n" +
		"FROM " + stagingTable + " c WHERE c.is_create AND c.batch = $1\n" +
		"ON CONFLICT (account_id) DO UPDATE SET " + strings.Join(sets, ", ")
	x.sql.updateAccounts = "UPDATE " + t.accounts + " a SET " + strings.Join(upd, ",\n  ") + "\n" +
		"FROM " + stagingTable + " c WHERE NOT c.is_create AND c.batch = $1 AND a.account_id = c.account_id"

	// For a CountDevices without a change of its account in the batch
	// (reducers never make one). Lists of accounts are joined as unnest(),
	// never "= ANY(array)": a generic plan would scan the table and test
	// each row against the whole array.
	x.sql.countDevices = "UPDATE " + t.accounts + " a SET " +
		"trusted_devices = (SELECT count(*) FROM " + t.trusted + " d WHERE d.account_id = a.account_id), " +
		"biometric_devices = (SELECT count(*) FROM " + t.biometric + " b WHERE b.account_id = a.account_id) " +
		"FROM unnest($1::text[]) AS n(account_id) WHERE a.account_id = n.account_id"

	// Device statements come in rounds (queueDevices): in each, an account
	// appears once, so each kind is one multi-row statement. Trusted devices
	// are keyed by (account, sequence), as the decider keeps a list: the
	// prune finds, once per account, the cut below which devices go.
	x.sql.trustDevice = "INSERT INTO " + t.trusted + " (account_id, seq, device_ref, created_at, expires_at, channel)\n" +
		"SELECT a, s, r, c, e, NULLIF(ch, '') FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[]) AS n(a, s, r, c, e, ch)"
	// The decider drops the devices expired at the new one's creation, then
	// keeps the newest: the same here, by sequence.
	x.sql.pruneTrusted = "DELETE FROM " + t.trusted + " d USING (\n" +
		"  SELECT n.account_id, n.seq, n.at, (SELECT k.seq FROM " + t.trusted + " k\n" +
		"    WHERE k.account_id = n.account_id AND k.seq < n.seq AND k.expires_at > n.at\n" +
		"    ORDER BY k.seq DESC OFFSET n.keep - 1 LIMIT 1) AS cut\n" +
		"  FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::integer[]) AS n(account_id, seq, at, keep)) n\n" +
		"WHERE d.account_id = n.account_id AND d.seq < n.seq AND (d.expires_at <= n.at OR d.seq <= n.cut)"
	x.sql.forgetDevices = "DELETE FROM " + t.trusted + " d USING unnest($1::text[]) AS n(account_id) WHERE d.account_id = n.account_id"
	// A device enrolled again moves to the newest place (the decider
	// replaces its entry).
	x.sql.enrollBiometric = "INSERT INTO " + t.biometric + " (account_id, device_id, seq, enrolled_at, expires_at)\n" +
		"SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])\n" +
		"ON CONFLICT (account_id, device_id) DO UPDATE SET " +
		"seq = EXCLUDED.seq, enrolled_at = EXCLUDED.enrolled_at, expires_at = EXCLUDED.expires_at"
	x.sql.pruneBiometric = "DELETE FROM " + t.biometric + " d USING (\n" +
		"  SELECT n.account_id, (SELECT k.seq FROM " + t.biometric + " k WHERE k.account_id = n.account_id\n" +
		"    ORDER BY k.seq DESC OFFSET n.keep LIMIT 1) AS cut\n" +
		"  FROM unnest($1::text[], $2::integer[]) AS n(account_id, keep)) n\n" +
		"WHERE d.account_id = n.account_id AND d.seq <= n.cut"
	x.sql.revokeBiometric = "DELETE FROM " + t.biometric + " d USING unnest($1::text[], $2::text[]) AS n(account_id, device_id)\n" +
		"WHERE d.account_id = n.account_id AND (n.device_id = '' OR d.device_id = n.device_id)"

	// The fraud counters add what the batch counted: rows are keyed on
	// what they count, the arrays come sorted (projections.FraudCounts'
	// keys), so two partitions' projectors lock shared rows in one order.
	x.sql.fraud.bySource = "INSERT INTO " + q("fraud_source_hourly") + " AS f (source_prefix, hour, step, outcome, attempts)\n" +
		"SELECT * FROM unnest($1::text[]::cidr[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[])\n" +
		"ON CONFLICT (source_prefix, hour, step, outcome) DO UPDATE SET attempts = f.attempts + EXCLUDED.attempts"
	x.sql.fraud.byDevice = "INSERT INTO " + q("fraud_device_hourly") + " AS f (ua_hash, hour, step, outcome, attempts)\n" +
		"SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[])\n" +
		"ON CONFLICT (ua_hash, hour, step, outcome) DO UPDATE SET attempts = f.attempts + EXCLUDED.attempts"
	x.sql.fraud.byHour = "INSERT INTO " + q("fraud_hourly") + " AS f (hour, channel, step, outcome, attempts)\n" +
		"SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[])\n" +
		"ON CONFLICT (hour, channel, step, outcome) DO UPDATE SET attempts = f.attempts + EXCLUDED.attempts"
	x.sql.fraud.userAgents = "INSERT INTO " + q("fraud_user_agents") + " AS f (ua_hash, user_agent, first_seen_at)\n" +
		"SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])\n" +
		"ON CONFLICT (ua_hash) DO UPDATE SET first_seen_at = EXCLUDED.first_seen_at WHERE EXCLUDED.first_seen_at < f.first_seen_at"
	x.sql.fraud.changes = "INSERT INTO " + q("credential_changes") + " (partition, seq, account_id, kind, at)\n" +
		"SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[])"

	x.sql.fraud.oidc = "INSERT INTO " + q("oidc_authorizations") + " (partition, seq, account_id, kind, client_id, scopes, acr, amr, at)\n" +
		"SELECT $1, seq, account_id, kind, client_id, string_to_array(scopes, ' '), acr, string_to_array(nullif(amr, ''), ' '), at\n" +
		"FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])\n" +
		"AS u(seq, account_id, kind, client_id, scopes, acr, amr, at)"

	x.sql.lockCheckpoint = "SELECT last_seq FROM " + t.checkpoint + " WHERE projection = $1 AND partition = $2 FOR UPDATE"
	x.sql.readCheckpointNoLck = "SELECT last_seq, last_event_at FROM " + t.checkpoint + " WHERE projection = $1 AND partition = $2"
	x.sql.updateCheckpoint = "UPDATE " + t.checkpoint + " SET last_seq = $3, last_event_at = $4, updated_at = now() WHERE projection = $1 AND partition = $2"
	x.sql.ensureCheckpoint = "INSERT INTO " + t.checkpoint + " (projection, partition, last_seq) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING"
	return x
}

// forPartition is the executor of one partition of the events
// (docs/scale.md): its checkpoint row and its login attempts' partition.
func (x *executor) forPartition(p int) *executor {
	return &executor{schema: x.schema, t: x.t, sql: x.sql, stagingColumns: x.stagingColumns, partition: p}
}

// ready is a plan turned into queries and COPY payloads, built before the
// transaction opens so the transaction spends its time in Postgres only.
type ready struct {
	devices  *pgx.Batch // device statements, in rounds
	batch    int64      // the staging rows' batch number
	accounts []byte     // COPY payload of the staging rows, nil if none
	creates  bool       // some staging rows are creates
	updates  bool
	counts   []string   // CountDevices without an account change (never, from the reducers)
	attempts []byte     // COPY payload of the login attempts, nil if none
	fraud    *pgx.Batch // the fraud read model's statements
}

// prepare turns a plan into queries. The order matters only between devices
// and their counts (see projections.Plan).
func (x *executor) prepare(p projections.Plan) *ready {
	r := &ready{devices: &pgx.Batch{}, batch: x.batches.Add(1)}
	x.queueDevices(r.devices, p.Devices)
	recount := make(map[string]bool, len(p.Counts))
	for _, id := range p.Counts {
		recount[id] = true
	}
	if len(p.Accounts) > 0 {
		c := newCopyData(len(p.Accounts) * 200)
		for i := range p.Accounts {
			ch := &p.Accounts[i]
			c.row(len(x.stagingColumns))
			c.text(ch.AccountID)
			for _, col := range accountColumns {
				switch v := col.get(&ch.Row).(type) {
				case string:
					if col.kind == kNullText {
						c.textOrNull(v)
					} else {
						c.text(v)
					}
				case bool:
					c.bool(v)
				case int:
					c.int4(int32(v))
				case time.Time:
					c.timeOrNull(v)
				}
			}
			c.time(ch.At)
			c.int8(int64(ch.Seq))
			c.int8(int64(ch.Set))
			if len(ch.LiftBlockIf) > 0 {
				c.text(strings.Join(ch.LiftBlockIf, ","))
			} else {
				c.null()
			}
			c.bool(ch.Create)
			c.bool(recount[ch.AccountID])
			c.int8(r.batch)
			delete(recount, ch.AccountID)
			if ch.Create {
				r.creates = true
			} else {
				r.updates = true
			}
		}
		r.accounts = c.bytes()
	}
	for _, id := range p.Counts {
		if recount[id] {
			r.counts = append(r.counts, id)
		}
	}
	if len(p.Attempts) > 0 {
		c := newCopyData(len(p.Attempts) * 200)
		for i := range p.Attempts {
			x.encodeAttempt(c, &p.Attempts[i])
		}
		r.attempts = c.bytes()
	}
	r.fraud = x.fraudBatch(p.Fraud, p.Changes)
	x.oidcRows(r.fraud, p.OIDC)
	return r
}

// fraudBatch turns what a batch adds to the fraud read model into its
// statements (none when it adds nothing).
func (x *executor) fraudBatch(f projections.FraudCounts, changes []projections.RecordCredentialChange) *pgx.Batch {
	b := &pgx.Batch{}
	if !f.Empty() {
		if ks := f.SourceKeys(); len(ks) > 0 {
			prefix, step, outcome := make([]string, len(ks)), make([]string, len(ks)), make([]string, len(ks))
			hour, n := make([]time.Time, len(ks)), make([]int64, len(ks))
			for i, k := range ks {
				prefix[i], hour[i], step[i], outcome[i], n[i] = k.Prefix.String(), k.Hour, k.Step, k.Outcome, f.BySource[k]
			}
			b.Queue(x.sql.fraud.bySource, prefix, hour, step, outcome, n)
		}
		if ks := f.DeviceKeys(); len(ks) > 0 {
			ua, step, outcome := make([]string, len(ks)), make([]string, len(ks)), make([]string, len(ks))
			hour, n := make([]time.Time, len(ks)), make([]int64, len(ks))
			for i, k := range ks {
				ua[i], hour[i], step[i], outcome[i], n[i] = k.UAHash, k.Hour, k.Step, k.Outcome, f.ByDevice[k]
			}
			b.Queue(x.sql.fraud.byDevice, ua, hour, step, outcome, n)
			hashes := f.UserAgentHashes()
			text, first := make([]string, len(hashes)), make([]time.Time, len(hashes))
			for i, h := range hashes {
				seen := f.UserAgents[h]
				text[i], first[i] = cleanText(seen.UserAgent), seen.FirstSeenAt
			}
			b.Queue(x.sql.fraud.userAgents, hashes, text, first)
		}
		ks := f.HourKeys()
		channel, step, outcome := make([]string, len(ks)), make([]string, len(ks)), make([]string, len(ks))
		hour, n := make([]time.Time, len(ks)), make([]int64, len(ks))
		for i, k := range ks {
			hour[i], channel[i], step[i], outcome[i], n[i] = k.Hour, cleanText(k.Channel), k.Step, k.Outcome, f.ByHour[k]
		}
		b.Queue(x.sql.fraud.byHour, hour, channel, step, outcome, n)
	}
	if len(changes) > 0 {
		seq, acc, kind, at := make([]int64, len(changes)), make([]string, len(changes)), make([]string, len(changes)), make([]time.Time, len(changes))
		for i, c := range changes {
			seq[i], acc[i], kind[i], at[i] = int64(c.Seq), c.AccountID, c.Kind, c.At
		}
		b.Queue(x.sql.fraud.changes, x.partition, seq, acc, kind, at)
	}
	return b
}

// oidcRows queues the OpenID Connect rows of a batch into b, one
// statement for them all. Scopes and amr travel as space-separated text
// (scope tokens hold no space: RFC 6749 3.3) made arrays in SQL, since
// pgx does not send arrays of arrays.
func (x *executor) oidcRows(b *pgx.Batch, rows []projections.RecordOIDC) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	seq, at := make([]int64, n), make([]time.Time, n)
	acc, kind, client, scopes, acr, amr := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		seq[i], acc[i], kind[i], client[i], at[i] = int64(r.Seq), r.AccountID, r.Kind, cleanText(r.ClientID), r.At
		scopes[i], acr[i], amr[i] = cleanText(strings.Join(r.Scopes, " ")), cleanText(r.ACR), cleanText(strings.Join(r.AMR, " "))
	}
	b.Queue(x.sql.fraud.oidc, x.partition, seq, acc, kind, client, scopes, acr, amr, at)
}

// encodeAttempt appends a login attempt's row to a COPY payload.
func (x *executor) encodeAttempt(c *copyData, a *projections.Attempt) {
	c.row(len(attemptColumns))
	c.int4(int32(x.partition))
	c.text(a.EventID)
	c.int8(int64(a.Seq))
	c.text(a.AccountID)
	c.time(a.At)
	c.textOrNull(a.Channel)
	c.textOrNull(a.ClientIP)
	c.textOrNull(a.UserAgent)
	c.text(a.Step)
	c.text(a.Outcome)
	c.textOrNull(a.Reason)
	c.textOrNull(a.Method)
	c.textOrNull(a.Device)
	if a.Failures != 0 {
		c.int4(int32(a.Failures))
	} else {
		c.null()
	}
	c.timeOrNull(a.BlockedUntil)
	c.textOrNull(a.LoginRef)
}

// sessionSettings tunes the planner for batches. A batch touches a few
// thousand rows of big tables by key, joined to unnest() arrays and to the
// staging table, which have no statistics: index nested loops are always the
// right plan, and the planner, guessing, sometimes sorts or hashes a whole
// table instead. And JIT would compile the statements (whose estimates are
// generous) for 100 ms a time.
//
// Commits do not wait for the WAL flush: a commit lost in a Postgres crash
// loses its rows and its checkpoint together, and delivery restarts from
// the checkpoint that survived (the consumer is set from it whenever a
// replica starts leading), so the effect stays exactly-once; readers may
// see the last fraction of a second again after such a crash.
func sessionSettings(cfg *pgx.ConnConfig) {
	cfg.RuntimeParams["synchronous_commit"] = "off"
	cfg.RuntimeParams["jit"] = "off"
	cfg.RuntimeParams["enable_hashjoin"] = "off"
	cfg.RuntimeParams["enable_mergejoin"] = "off"
}

// setup prepares a new session for batches: its staging table.
func (x *executor) setup(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, x.sql.createStaging); err != nil {
		return fmt.Errorf("staging table: %w", err)
	}
	return nil
}

// exec runs prepared queries inside tx, on a session set up by setup.
func (x *executor) exec(ctx context.Context, tx pgx.Tx, r *ready, t *Timings) error {
	mark := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d += now.Sub(mark)
		mark = now
	}
	b := r.devices
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write devices: %w", err)
		}
	}
	lap(&t.Devices)
	pg := tx.Conn().PgConn()
	b = &pgx.Batch{}
	if r.accounts != nil {
		if _, err := pg.CopyFrom(ctx, bytes.NewReader(r.accounts), x.sql.copyStaging); err != nil {
			return fmt.Errorf("copy account changes: %w", err)
		}
		lap(&t.Staging)
		if r.creates {
			b.Queue(x.sql.createAccounts, r.batch)
		}
		if r.updates {
			b.Queue(x.sql.updateAccounts, r.batch)
		}
	}
	if len(r.counts) > 0 {
		b.Queue(x.sql.countDevices, r.counts)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write accounts: %w", err)
		}
	}
	lap(&t.Accounts)
	if r.attempts != nil {
		if _, err := pg.CopyFrom(ctx, bytes.NewReader(r.attempts), x.sql.copyAttempts); err != nil {
			return fmt.Errorf("copy login attempts: %w", err)
		}
	}
	if r.fraud != nil && r.fraud.Len() > 0 {
		if err := tx.SendBatch(ctx, r.fraud).Close(); err != nil {
			return fmt.Errorf("write the fraud read model: %w", err)
		}
	}
	lap(&t.Attempts)
	return nil
}

// Timings splits the time of batch transactions by phase, for tuning.
type Timings struct {
	Begin    time.Duration // begin, locks, checkpoint read
	Devices  time.Duration // device statements
	Staging  time.Duration // COPY of account changes
	Accounts time.Duration // merge into accounts
	Attempts time.Duration // COPY of login attempts, and the fraud read model
	Commit   time.Duration // checkpoint write and commit
}

// Add sums timings.
func (t *Timings) Add(o Timings) {
	t.Begin += o.Begin
	t.Devices += o.Devices
	t.Staging += o.Staging
	t.Accounts += o.Accounts
	t.Attempts += o.Attempts
	t.Commit += o.Commit
}

// queueDevices queues the device statements set-based, in rounds: round k
// holds the k-th device statement of each account in the batch. Within a
// round every account appears once, so its statements commute and run as
// one multi-row statement per kind; rounds run in order, so each account's
// device statements keep their stream order.
func (x *executor) queueDevices(b *pgx.Batch, stmts []projections.Statement) {
	if len(stmts) == 0 {
		return
	}
	var rounds [][]projections.Statement
	seen := map[string]int{}
	for _, s := range stmts {
		id := deviceAccount(s)
		k := seen[id]
		seen[id] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], s)
	}
	for _, round := range rounds {
		var trust struct {
			acc, ref, channel []string
			seq               []int64
			created, expires  []time.Time
			keep              []int32
		}
		var forget []string
		var enroll struct {
			acc, dev          []string
			seq               []int64
			enrolled, expires []time.Time
			keep              []int32
		}
		var revoke struct{ acc, dev []string }
		for _, s := range round {
			switch s := s.(type) {
			case projections.TrustDevice:
				trust.acc, trust.ref, trust.channel = append(trust.acc, s.AccountID), append(trust.ref, s.DeviceRef), append(trust.channel, cleanText(s.Channel))
				trust.seq, trust.keep = append(trust.seq, int64(s.Seq)), append(trust.keep, int32(s.Keep))
				trust.created, trust.expires = append(trust.created, s.CreatedAt), append(trust.expires, s.ExpiresAt)
			case projections.ForgetDevices:
				forget = append(forget, s.AccountID)
			case projections.EnrollBiometric:
				enroll.acc, enroll.dev = append(enroll.acc, s.AccountID), append(enroll.dev, cleanText(s.DeviceID))
				enroll.seq, enroll.keep = append(enroll.seq, int64(s.Seq)), append(enroll.keep, int32(s.Keep))
				enroll.enrolled, enroll.expires = append(enroll.enrolled, s.EnrolledAt), append(enroll.expires, s.ExpiresAt)
			case projections.RevokeBiometrics:
				revoke.acc, revoke.dev = append(revoke.acc, s.AccountID), append(revoke.dev, cleanText(s.DeviceID))
			}
		}
		if len(trust.acc) > 0 {
			b.Queue(x.sql.trustDevice, trust.acc, trust.seq, trust.ref, trust.created, trust.expires, trust.channel)
			b.Queue(x.sql.pruneTrusted, trust.acc, trust.seq, trust.created, trust.keep)
		}
		if len(forget) > 0 {
			b.Queue(x.sql.forgetDevices, forget)
		}
		if len(enroll.acc) > 0 {
			b.Queue(x.sql.enrollBiometric, enroll.acc, enroll.dev, enroll.seq, enroll.enrolled, enroll.expires)
			b.Queue(x.sql.pruneBiometric, enroll.acc, enroll.keep)
		}
		if len(revoke.acc) > 0 {
			b.Queue(x.sql.revokeBiometric, revoke.acc, revoke.dev)
		}
	}
}

func deviceAccount(s projections.Statement) string {
	switch s := s.(type) {
	case projections.TrustDevice:
		return s.AccountID
	case projections.ForgetDevices:
		return s.AccountID
	case projections.EnrollBiometric:
		return s.AccountID
	case projections.RevokeBiometrics:
		return s.AccountID
	}
	return ""
}

func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}
