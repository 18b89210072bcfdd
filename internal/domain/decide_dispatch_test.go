package domain

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/events"
)

// unknownCommand is a command the decider has no rule for.
type unknownCommand struct{}

func (unknownCommand) isCommand() {}

// A command without a rule is a programming error, told as such, never a
// silent success: on an existing account the decider used to fall through
// to "nothing to record, no refusal".
func TestDecideRefusesACommandItHasNoRuleFor(t *testing.T) {
	d := Decider{Policy: SeedPolicy()}
	for name, a := range map[string]Account{
		"an_unknown_command_on_an_unknown_account_is_an_error":    {ID: "acc"},
		"an_unknown_command_on_an_existing_account_is_an_error":   Evolve(Account{ID: "acc"}, registered),
		"an_unknown_command_on_a_deactivated_account_is_an_error": Evolve(Evolve(Account{ID: "acc"}, registered), deactivated),
	} {
		t.Run(name, func(t *testing.T) {
			evs, err := d.Decide(a, unknownCommand{}, t0)
			if evs != nil || !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("Decide(unknownCommand) = %v, %v; want no event and ErrUnknownCommand", evs, err)
			}
			var refusal *Error
			if errors.As(err, &refusal) {
				t.Fatalf("told as the refusal %q: a missing rule is not the user's doing", refusal.Code)
			}
		})
	}
}

// Decide's switch has a case for every command of the package: the types
// with an isCommand method (the interface is sealed, so that is all of
// them) are exactly the types of its cases.
func TestDecideHasOneCaseForEveryCommand(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var commands, cases []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || len(fn.Recv.List) != 1 {
				continue
			}
			recv, _ := fn.Recv.List[0].Type.(*ast.Ident)
			switch {
			case fn.Name.Name == "isCommand" && recv != nil:
				commands = append(commands, recv.Name)
			case fn.Name.Name == "Decide" && recv != nil && recv.Name == "Decider":
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if cc, ok := n.(*ast.CaseClause); ok {
						for _, e := range cc.List {
							if id, ok := e.(*ast.Ident); ok {
								cases = append(cases, id.Name)
							}
						}
					}
					return true
				})
			}
		}
	}
	slices.Sort(commands)
	slices.Sort(cases)
	if len(commands) == 0 || !slices.Equal(commands, cases) {
		t.Fatalf("commands and Decide's cases differ:\n commands %v\n cases    %v", commands, cases)
	}
}

// Every command on an account that was never registered: each use case's
// own precondition answers, as the back-office, session and device rules
// say (these answers used to be patched over the results afterwards).
func TestEveryCommandOnAnUnknownAccount(t *testing.T) {
	notFound := &Error{Code: CodeAccountNotFound}
	noSession := &Error{Code: CodeSessionInvalid}
	noDevice := &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}
	runRows(t, []row{
		{name: "deactivating_an_unknown_account_is_refused_as_not_found", when: Deactivate{}, at: t0, err: notFound},
		{name: "setting_the_affiliation_of_an_unknown_account_is_refused_as_not_found", when: SetAffiliation{Affiliation: AffiliationActive}, at: t0, err: notFound},
		{name: "unlocking_an_unknown_account_is_refused_as_not_found", when: Unlock{}, at: t0, err: notFound},
		{name: "revoking_the_biometrics_of_an_unknown_account_is_refused_as_not_found", when: RevokeBiometrics{}, at: t0, err: notFound},
		{name: "a_password_for_an_unknown_account_is_told_invalid_credentials", when: wrongPassword(), at: t0, err: &Error{Code: CodeInvalidCredentials}},
		{name: "a_code_request_for_an_unknown_account_is_told_the_login_expired", when: send("L1", "c1"), at: t0, err: &Error{Code: CodeLoginExpired}},
		{name: "a_code_for_an_unknown_account_is_told_the_login_expired", when: verify("L1", "c1"), at: t0, err: &Error{Code: CodeLoginExpired}},
		{name: "logging_out_of_an_unknown_account_changes_nothing", when: Logout{SessionHash: "sess#"}, at: t0},
		{name: "answering_the_offer_on_an_unknown_account_needs_a_session", when: AnswerBiometricOffer{SessionHash: "sess#", Response: events.OfferLater}, at: t0, err: noSession},
		{name: "enrolling_on_an_unknown_account_needs_a_session", when: EnrollBiometric{SessionHash: "sess#", DeviceID: "phone-1", PublicKey: "pk"}, at: t0, err: noSession},
		{name: "a_challenge_for_an_unknown_account_names_an_unknown_device", when: IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch1"}, at: t0, err: noDevice},
		{name: "a_biometric_login_on_an_unknown_account_names_an_unknown_device", when: bioLogin("ch1", true), at: t0, err: noDevice},
		{name: "a_password_change_on_an_unknown_account_needs_a_session", when: start("k1"), at: t0, err: noSession},
		{name: "a_change_code_on_an_unknown_account_needs_a_session", when: VerifyChangeCode{SessionHash: "sess#", CodeHash: "k1"}, at: t0, err: noSession},
		{name: "a_new_password_on_an_unknown_account_needs_a_session", when: CompletePasswordChange{SessionHash: "sess#", PasswordHash: "h"}, at: t0, err: noSession},
		{name: "an_email_change_on_an_unknown_account_needs_a_session", when: RequestEmailChange{SessionHash: "sess#", CodeHash: "e1"}, at: t0, err: noSession},
		{name: "an_email_code_on_an_unknown_account_needs_a_session", when: ConfirmEmailChange{SessionHash: "sess#", CodeHash: "e1"}, at: t0, err: noSession},
		{name: "a_reset_request_for_an_unknown_account_records_nothing_and_refuses_nothing", when: RequestPasswordReset{TokenHash: "tok#"}, at: t0},
		{name: "a_reset_link_for_an_unknown_account_is_invalid", when: CompletePasswordReset{TokenHash: "tok#", PasswordHash: "h"}, at: t0, err: &Error{Code: CodeResetTokenInvalid}},
	})
}
