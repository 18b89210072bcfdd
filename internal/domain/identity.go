package domain

// The holder's civil identity (issue 18): the « identité pivot » that
// FranceConnect expects from an identity provider, given optionally at
// registration or import, checked against what the NIR itself encodes.

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Genders of the identity (OpenID Connect Core 5.1's values).
const (
	GenderMale   = "male"
	GenderFemale = "female"
)

// CountryFrance is the INSEE country code of France (COG): a person born
// in France has it as birthcountry and a commune code as birthplace.
const CountryFrance = "99100"

// MaxNameRunes bounds a given or family name, in characters (our choice,
// above FranceConnect's longest names).
const MaxNameRunes = 100

// Identity is the holder's civil identity as the OpenID Connect claims
// give it (FranceConnect's « identité pivot »): names, birth date
// (YYYY-MM-DD), gender (male or female), INSEE commune code of the birth
// place in France ("" abroad) and INSEE country code (99100 for France).
// It is sealed in the events and the state (never in clear): its JSON is
// what is sealed.
type Identity struct {
	GivenName    string `json:"given_name"`
	FamilyName   string `json:"family_name"`
	Birthdate    string `json:"birthdate"`
	Gender       string `json:"gender"`
	Birthplace   string `json:"birthplace"`
	Birthcountry string `json:"birthcountry"`
}

// identityField names a field of the identity in a refusal.
func identityField(name string) string { return "identity." + name }

// CheckIdentity checks an identity given for the canonical NIR nir (as
// ParseNIR returns it) and returns it tidied (names trimmed, inner runs
// of spaces made one). Every field is required but birthplace, which is
// required for a birth in France and must be empty abroad. The NIR
// (s yy mm dd ccc kkk: sex, year, month, département, commune, order;
// INSEE) must agree:
//   - gender: male for a first digit 1, 3 or 7, female for 2, 4 or 8;
//   - birthdate: its year's last two digits are yy; its month is mm, unless
//     mm is 20 to 42 or 50 to 99 (« mois inconnu »: any month);
//   - born in France (birthcountry 99100): the NIR's département and commune
//     are the birthplace's (5 characters: 2 for the département and 3 for
//     the commune, 2A/2B for Corsica, which a NIR of a birth before 1976
//     writes 20; 3 and 2 for the overseas départements 97x);
//   - born abroad: the NIR's département is 99 and its 3 next digits are the
//     country's, birthcountry being 99 and those digits.
//
// Errors are invalid_request naming the field (identity.birthdate...),
// in French; no error repeats a value (they are logged nowhere, but a
// refusal must not echo a NIR's parts).
func CheckIdentity(nir string, in Identity) (Identity, *Error) {
	out := in
	var err *Error
	if out.GivenName, err = checkName("given_name", in.GivenName); err != nil {
		return Identity{}, err
	}
	if out.FamilyName, err = checkName("family_name", in.FamilyName); err != nil {
		return Identity{}, err
	}
	if len(nir) != 13 {
		return Identity{}, InvalidRequest("nir", ErrNIRLength.Error())
	}
	if err := checkBirthdate(nir, in.Birthdate); err != nil {
		return Identity{}, err
	}
	if err := checkGender(nir, in.Gender); err != nil {
		return Identity{}, err
	}
	if err := checkBirthPlace(nir, in.Birthplace, in.Birthcountry); err != nil {
		return Identity{}, err
	}
	return out, nil
}

func checkName(field, v string) (string, *Error) {
	name := strings.Join(strings.Fields(v), " ")
	switch {
	case name == "":
		return "", InvalidRequest(identityField(field), "est obligatoire")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameRunes:
		return "", InvalidRequest(identityField(field), "doit faire au plus 100 caractères")
	}
	const bad = "ne doit contenir que des lettres, espaces, traits d'union et apostrophes, entre des lettres"
	prevSep := true // the name must start with a letter
	for _, r := range name {
		sep := r == ' ' || r == '-' || r == '\'' || r == '’'
		switch {
		case unicode.IsLetter(r), unicode.Is(unicode.M, r) && !prevSep:
		case sep && !prevSep:
		default:
			return "", InvalidRequest(identityField(field), bad)
		}
		prevSep = sep
	}
	if prevSep {
		return "", InvalidRequest(identityField(field), bad)
	}
	return name, nil
}

// nirMonthUnknown tells whether a NIR's month digits stand for an unknown
// month (INSEE: 20 to 42, or 50 to 99, for people whose birth month was
// not known when they were registered).
func nirMonthUnknown(mm int) bool { return mm >= 20 && mm <= 42 || mm >= 50 && mm <= 99 }

func checkBirthdate(nir, v string) *Error {
	field := identityField("birthdate")
	if v == "" {
		return InvalidRequest(field, "est obligatoire")
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil || len(v) != 10 {
		return InvalidRequest(field, "doit être une date AAAA-MM-JJ")
	}
	if d.Year() < 1850 {
		return InvalidRequest(field, "doit être postérieure à 1850")
	}
	yy, mm := atoi2(nir[1:3]), atoi2(nir[3:5])
	if d.Year()%100 != yy {
		return InvalidRequest(field, "ne correspond pas à l'année de naissance du NIR")
	}
	if !nirMonthUnknown(mm) && int(d.Month()) != mm {
		return InvalidRequest(field, "ne correspond pas au mois de naissance du NIR")
	}
	return nil
}

func checkGender(nir, v string) *Error {
	field := identityField("gender")
	var want string
	switch nir[0] {
	case '1', '3', '7':
		want = GenderMale
	case '2', '4', '8':
		want = GenderFemale
	}
	switch {
	case v == "":
		return InvalidRequest(field, "est obligatoire")
	case v != GenderMale && v != GenderFemale:
		return InvalidRequest(field, "doit valoir male ou female")
	case v != want:
		return InvalidRequest(field, "ne correspond pas au sexe indiqué par le NIR")
	}
	return nil
}

func checkBirthPlace(nir, place, country string) *Error {
	placeField, countryField := identityField("birthplace"), identityField("birthcountry")
	if country == "" {
		return InvalidRequest(countryField, "est obligatoire")
	}
	if len(country) != 5 || !strings.HasPrefix(country, "99") || !digits(country) {
		return InvalidRequest(countryField, "doit être un code pays INSEE de 5 chiffres commençant par 99 (99100 pour la France)")
	}
	dept := nir[5:7]
	if country != CountryFrance {
		switch {
		case place != "":
			return InvalidRequest(placeField, "doit être vide pour une naissance à l'étranger")
		case dept != "99" || nir[7:10] != country[2:]:
			return InvalidRequest(countryField, "ne correspond pas au pays de naissance du NIR")
		}
		return nil
	}
	switch {
	case place == "":
		return InvalidRequest(placeField, "est obligatoire pour une naissance en France")
	case len(place) != 5 || !communeCode(place):
		return InvalidRequest(placeField, "doit être un code commune INSEE de 5 caractères (2A ou 2B pour la Corse)")
	case dept == "99":
		return InvalidRequest(countryField, "ne correspond pas au pays de naissance du NIR")
	}
	var match bool
	switch {
	case strings.HasPrefix(place, "97"):
		// Overseas départements: 3 characters, then a 2-digit commune.
		match = nir[5:8] == place[:3] && nir[8:10] == place[3:]
	case place[:2] == "2A" || place[:2] == "2B":
		// Corsica: a NIR of a birth before its split (1976) says 20.
		match = (dept == place[:2] || dept == "20") && nir[7:10] == place[2:]
	default:
		match = dept == place[:2] && nir[7:10] == place[2:]
	}
	if !match {
		return InvalidRequest(placeField, "ne correspond pas au lieu de naissance du NIR")
	}
	return nil
}

// communeCode tells whether s is shaped as an INSEE commune code: 5
// digits, or 2A/2B and 3 digits; never 20 (Corsica's communes are coded
// 2A/2B since 1976, whatever a NIR says) nor 99 (abroad).
func communeCode(s string) bool {
	switch s[:2] {
	case "2A", "2B":
		return digits(s[2:])
	case "20", "99":
		return false
	}
	return digits(s)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// atoi2 reads two digits (-1 if they are not).
func atoi2(s string) int {
	if len(s) != 2 || !digits(s) {
		return -1
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}
