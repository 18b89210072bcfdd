package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// MaxRequestBytes bounds a request body.
const MaxRequestBytes = 64 << 10

// Common is what every request may carry.
type Common struct {
	RequestID string `json:"request_id,omitempty"`
	Channel   string `json:"channel,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

func (c *Common) common() *Common { return c }

type request interface{ common() *Common }

// Channels a request may come from (the seed's web site, app and BMS kiosks,
// and advisers' back-office).
var channels = map[string]bool{"web": true, "app": true, "kiosk": true, "backoffice": true}

// errorReply turns a refusal into its reply, in the web's words. Anything
// that is not a domain refusal is an internal failure: the user is told
// `unavailable`, never why.
func errorReply(err error) contract.Failure { return errorReplyFor("", err) }

// errorReplyFor is errorReply in the words of the request's channel (the
// seed's app words some refusals otherwise than the web page).
func errorReplyFor(channel string, err error) contract.Failure {
	var de *domain.Error
	if !errors.As(err, &de) {
		de = &domain.Error{Code: domain.CodeUnavailable}
	}
	return contract.Failure{OK: false, Error: &contract.ErrorBody{
		Code: de.Code, Message: de.MessageFor(channel), Field: de.Field, Reason: de.Reason,
		BlockedUntil: contract.Timestamp(de.BlockedUntil), AttemptsLeft: de.AttemptsLeft,
		DeactivatedAt: contract.Timestamp(de.DeactivatedAt), Until: contract.Timestamp(de.Until),
	}}
}

// maxRequestBytes is the bound of a request on subject: MaxRequestBytes,
// or MaxImportBatchBytes for account.import_batch.
func maxRequestBytes(subject string) int {
	if subject == contract.CmdAccountImportBatch {
		return MaxImportBatchBytes
	}
	return MaxRequestBytes
}

// decode reads a request strictly: valid UTF-8, at most MaxRequestBytes, one
// JSON object, no unknown field, the right types. Every refusal names the
// field at fault ("body" for the whole payload).
func decode(data []byte, into request) error { return decodeMax(data, into, MaxRequestBytes) }

// decodeMax is decode with another bound than MaxRequestBytes.
func decodeMax(data []byte, into request, max int) error {
	if len(data) > max {
		return domain.InvalidRequest("body", fmt.Sprintf("dépasse la taille maximale de %d octets", max))
	}
	if !utf8.Valid(data) {
		return domain.InvalidRequest("body", "n'est pas encodé en UTF-8 valide")
	}
	// encoding/json reads null into a struct as nothing at all: a body
	// must be an object, not null standing for an empty request.
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] != '{' && json.Valid(t) {
		return domain.InvalidRequest("body", "doit être un objet JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return domain.InvalidRequest("body", "doit contenir un seul objet JSON")
	}
	return checkCommon(into.common())
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return domain.InvalidRequest("body", "doit être un objet JSON")
		}
		return domain.InvalidRequest(typeErr.Field, "n'a pas le bon type (attendu : "+jsonKind(typeErr.Type.Kind().String())+")")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return domain.InvalidRequest("body", "n'est pas un JSON valide")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f = strings.Trim(f, `"`); f == "" {
			// {"": ...}: a refusal names a field (the reply schema
			// requires it), and this one has no name.
			return domain.InvalidRequest("body", "contient un champ sans nom")
		}
		return domain.InvalidRequest(f, "n'est pas un champ connu de cette commande")
	}
	return domain.InvalidRequest("body", "n'est pas un JSON valide")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "texte"
	case "bool":
		return "booléen"
	case "int", "int64", "float64", "uint", "uint64":
		return "nombre"
	case "struct", "map":
		return "objet"
	}
	return k
}

func checkCommon(c *Common) error {
	if len(c.RequestID) > 128 || strings.ContainsFunc(c.RequestID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':')
	}) {
		return domain.InvalidRequest("request_id", "doit faire au plus 128 caractères parmi lettres, chiffres, - _ . :")
	}
	if c.Channel == "" {
		c.Channel = "web"
	}
	if !channels[c.Channel] {
		return domain.InvalidRequest("channel", "doit valoir web, app, kiosk ou backoffice")
	}
	if c.ClientIP != "" {
		if _, err := netip.ParseAddr(c.ClientIP); err != nil {
			return domain.InvalidRequest("client_ip", "doit être une adresse IPv4 ou IPv6")
		}
	}
	if len(c.UserAgent) > 512 {
		return domain.InvalidRequest("user_agent", "doit faire au plus 512 octets")
	}
	return nil
}

// codeField reads a typed code: spaces ignored, exactly digits digits.
func codeField(code string, digits int) (string, error) {
	code = strings.ReplaceAll(code, " ", "")
	if err := required("code", code, 16); err != nil {
		return "", err
	}
	if len(code) != digits || strings.Trim(code, "0123456789") != "" {
		return "", domain.InvalidRequest("code", fmt.Sprintf("doit contenir %d chiffres", digits))
	}
	return code, nil
}

// nirField reads a mandatory NIR field as typed into its canonical form.
func nirField(field, v string) (string, error) {
	if err := required(field, v, 64); err != nil {
		return "", err
	}
	nir, err := domain.ParseNIR(v)
	if err != nil {
		return "", domain.InvalidRequest(field, err.Error())
	}
	return nir, nil
}

// emailField reads a mandatory email address field.
func emailField(field, v string) (string, error) {
	if err := required(field, v, 254); err != nil {
		return "", err
	}
	email, err := domain.NormalizeEmail(v)
	if err != nil {
		return "", domain.InvalidRequest(field, err.Error())
	}
	return email, nil
}

// required checks a mandatory text field.
func required(field, v string, max int) error {
	if strings.TrimSpace(v) == "" {
		return domain.InvalidRequest(field, "est obligatoire")
	}
	if len(v) > max {
		return domain.InvalidRequest(field, fmt.Sprintf("doit faire au plus %d octets", max))
	}
	return nil
}
