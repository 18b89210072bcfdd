package domain

import (
	"testing"
)

// CheckIdentity, rule by rule and boundary by boundary: what the NIR
// (s yy mm dd ccc kkk) says of the holder against the identity given.
func TestCheckIdentity(t *testing.T) {
	paris := Identity{GivenName: "Marie Claire", FamilyName: "Dupont", Birthdate: "1985-07-14", Gender: GenderFemale,
		Birthplace: "75056", Birthcountry: CountryFrance}
	with := func(change func(*Identity)) Identity {
		id := paris
		change(&id)
		return id
	}
	for _, r := range []struct {
		name  string
		nir   string
		given Identity
		field string // "" = accepted
	}{
		{"born_in_paris_matches", "2850775056123", paris, ""},
		{"a_male_nir_with_male_matches", "1850775056123", with(func(i *Identity) { i.Gender = GenderMale }), ""},
		{"temporary_nir_7_is_male", "7850775056123", with(func(i *Identity) { i.Gender = GenderMale }), ""},
		{"temporary_nir_8_is_female", "8850775056123", paris, ""},
		{"wrong_sex_female_on_a_male_nir", "1850775056123", paris, "identity.gender"},
		{"wrong_sex_male_on_a_female_nir", "2850775056123", with(func(i *Identity) { i.Gender = GenderMale }), "identity.gender"},
		{"gender_neither_male_nor_female", "2850775056123", with(func(i *Identity) { i.Gender = "f" }), "identity.gender"},
		{"wrong_year", "2860775056123", paris, "identity.birthdate"},
		{"same_two_digits_another_century_matches", "2850775056123", with(func(i *Identity) { i.Birthdate = "1885-07-14" }), ""},
		{"wrong_month", "2850875056123", paris, "identity.birthdate"},
		{"unknown_month_20_accepts_any_month", "2852075056123", paris, ""},
		{"unknown_month_42_accepts_any_month", "2854275056123", paris, ""},
		{"month_43_is_not_unknown", "2854375056123", paris, "identity.birthdate"},
		{"month_49_is_not_unknown", "2854975056123", paris, "identity.birthdate"},
		{"unknown_month_50_accepts_any_month", "2855075056123", paris, ""},
		{"unknown_month_99_accepts_any_month", "2859975056123", paris, ""},
		{"month_19_is_not_unknown", "2851975056123", paris, "identity.birthdate"},
		{"birthdate_not_a_date", "2850775056123", with(func(i *Identity) { i.Birthdate = "1985-02-30" }), "identity.birthdate"},
		{"birthdate_in_another_format", "2850775056123", with(func(i *Identity) { i.Birthdate = "14/07/1985" }), "identity.birthdate"},
		{"birthdate_before_1850", "2850775056123", with(func(i *Identity) { i.Birthdate = "1785-07-14" }), "identity.birthdate"},
		{"wrong_departement", "2850776056123", paris, "identity.birthplace"},
		{"wrong_commune", "2850775057123", paris, "identity.birthplace"},
		{"corsica_2a_matches", "285072A004123", with(func(i *Identity) { i.Birthplace = "2A004" }), ""},
		{"corsica_2b_matches", "285072B033123", with(func(i *Identity) { i.Birthplace = "2B033" }), ""},
		{"corsica_2a_is_not_2b", "285072B004123", with(func(i *Identity) { i.Birthplace = "2A004" }), "identity.birthplace"},
		{"corsica_before_1976_nir_says_20", "2650720004123", with(func(i *Identity) { i.Birthplace = "2A004"; i.Birthdate = "1965-07-14" }), ""},
		{"departement_20_is_not_a_birthplace_code_on_the_mainland", "2850720004123", with(func(i *Identity) { i.Birthplace = "20004" }), "identity.birthplace"},
		{"dom_reunion_97411_matches", "2850797411123", with(func(i *Identity) { i.Birthplace = "97411" }), ""},
		{"dom_guadeloupe_97105_matches", "2850797105123", with(func(i *Identity) { i.Birthplace = "97105" }), ""},
		{"dom_wrong_third_digit", "2850797311123", with(func(i *Identity) { i.Birthplace = "97411" }), "identity.birthplace"},
		{"dom_wrong_commune", "2850797412123", with(func(i *Identity) { i.Birthplace = "97411" }), "identity.birthplace"},
		{"born_abroad_99_with_the_country_matches", "2850799350123", with(func(i *Identity) { i.Birthplace = ""; i.Birthcountry = "99350" }), ""},
		{"born_abroad_wrong_country", "2850799350123", with(func(i *Identity) { i.Birthplace = ""; i.Birthcountry = "99351" }), "identity.birthcountry"},
		{"born_abroad_with_a_birthplace", "2850799350123", with(func(i *Identity) { i.Birthplace = "75056"; i.Birthcountry = "99350" }), "identity.birthplace"},
		{"born_abroad_but_the_nir_says_france", "2850775056123", with(func(i *Identity) { i.Birthplace = ""; i.Birthcountry = "99350" }), "identity.birthcountry"},
		{"born_in_france_but_the_nir_says_abroad", "2850799350123", paris, "identity.birthcountry"},
		{"born_in_france_without_birthplace", "2850775056123", with(func(i *Identity) { i.Birthplace = "" }), "identity.birthplace"},
		{"birthplace_not_a_commune_code", "2850775056123", with(func(i *Identity) { i.Birthplace = "7505" }), "identity.birthplace"},
		{"birthcountry_not_99", "2850775056123", with(func(i *Identity) { i.Birthcountry = "12100" }), "identity.birthcountry"},
		{"birthcountry_missing", "2850775056123", with(func(i *Identity) { i.Birthcountry = "" }), "identity.birthcountry"},
		{"given_name_missing", "2850775056123", with(func(i *Identity) { i.GivenName = "  " }), "identity.given_name"},
		{"family_name_missing", "2850775056123", with(func(i *Identity) { i.FamilyName = "" }), "identity.family_name"},
		{"names_with_accents_hyphens_apostrophes", "2850775056123", with(func(i *Identity) { i.GivenName = "Zoé-Hélène"; i.FamilyName = "d'Artagnan O’Neil" }), ""},
		{"name_with_a_digit", "2850775056123", with(func(i *Identity) { i.FamilyName = "Dupont2" }), "identity.family_name"},
		{"name_starting_with_a_hyphen", "2850775056123", with(func(i *Identity) { i.GivenName = "-Marie" }), "identity.given_name"},
		{"name_ending_with_an_apostrophe", "2850775056123", with(func(i *Identity) { i.GivenName = "Marie'" }), "identity.given_name"},
		{"name_with_two_separators_in_a_row", "2850775056123", with(func(i *Identity) { i.GivenName = "Marie--Claire" }), "identity.given_name"},
		{"name_of_100_letters", "2850775056123", with(func(i *Identity) { i.FamilyName = repeat("é", 100) }), ""},
		{"name_of_101_letters", "2850775056123", with(func(i *Identity) { i.FamilyName = repeat("é", 101) }), "identity.family_name"},
	} {
		t.Run(r.name, func(t *testing.T) {
			got, err := CheckIdentity(r.nir, r.given)
			switch {
			case r.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case r.field != "" && err == nil:
				t.Fatalf("accepted %+v, want a refusal naming %s", got, r.field)
			case r.field != "" && (err.Code != CodeInvalidRequest || err.Field != r.field || err.Detail == ""):
				t.Fatalf("refusal %v, want invalid_request naming %s", err, r.field)
			}
		})
	}
}

func TestCheckIdentityTidiesNames(t *testing.T) {
	id, err := CheckIdentity("2850775056123", Identity{GivenName: "  Marie   Claire ", FamilyName: "Dupont", Birthdate: "1985-07-14",
		Gender: GenderFemale, Birthplace: "75056", Birthcountry: CountryFrance})
	if err != nil || id.GivenName != "Marie Claire" {
		t.Fatalf("%+v %v", id, err)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
