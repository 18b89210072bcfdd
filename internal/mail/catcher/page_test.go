package catcher

import (
	"strings"
	"testing"
	"time"
)

// The page writes times in Paris time whatever the machine's zone: a mail
// received at 13:30 UTC on 5 January (winter, UTC+1) reads 14:30:00, and one
// on 5 July (summer, UTC+2) 15:30:00.
func TestPageShowsParisTime(t *testing.T) {
	winter := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	summer := time.Date(2023, 7, 5, 13, 30, 0, 0, time.UTC)
	msgs := []Message{
		{ID: "1", Subject: "hiver", Received: winter, Date: winter},
		{ID: "2", Subject: "été", Received: summer, Date: summer},
	}
	var list strings.Builder
	if err := listPage.Execute(&list, msgs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<td>14:30:00</td>", "<td>15:30:00</td>", "heure de Paris"} {
		if !strings.Contains(list.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, list.String())
		}
	}
	var show strings.Builder
	if err := showPage.Execute(&show, msgs[0]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(show.String(), "05/01/2023 14:30:00 (heure de Paris)") {
		t.Errorf("mail page lacks the Paris date:\n%s", show.String())
	}
	if strings.Contains(show.String(), "UTC") || strings.Contains(show.String(), "+0000") {
		t.Errorf("mail page shows a UTC time:\n%s", show.String())
	}
}
