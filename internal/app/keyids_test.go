package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// The start line names the keys by their ids, current first, and never
// shows a key (docs/keys.md, the rotation's checks).
func TestStartLogsKeyIDsNotKeys(t *testing.T) {
	current, previous := secrets.NewMasterKey(), secrets.NewMasterKey()
	keys, err := config.Config{SecretKey: current, SecretKeyPrev: previous}.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logKeyIDs(slog.New(slog.NewJSONHandler(&buf, nil)), keys)
	line := buf.String()
	ids := keys.IDs()
	if len(ids) != 2 || !strings.Contains(line, `"current":"`+ids[0]+`"`) || !strings.Contains(line, `"previous":["`+ids[1]+`"]`) {
		t.Errorf("start line %s does not name the key ids %v", line, ids)
	}
	for _, k := range []string{current, previous, current[:16], previous[:16]} {
		if strings.Contains(line, k) {
			t.Errorf("start line shows a key: %s", line)
		}
	}
}
