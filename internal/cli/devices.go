package cli

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// deviceStore keeps the trusted-device tokens of `authctl login` ("Se
// souvenir de cet appareil"), as a browser keeps the cookie: one per NIR.
// The file holds no NIR in clear: entries are keyed by HMAC-SHA256 of the
// canonical NIR under a random salt kept in the file, so the keys cannot be
// matched against a precomputed table of NIRs. The tokens are bearer
// secrets: the file is written with mode 0600 in a 0700 directory.
type deviceStore struct {
	path string
	data deviceFile
}

type deviceFile struct {
	Salt    string                 `json:"salt"`
	Devices map[string]deviceEntry `json:"devices"`
}

type deviceEntry struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// defaultDevicesFile is <user config dir>/ameli-auth/devices.json.
func defaultDevicesFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ameli-auth", "devices.json")
}

// loadDevices reads the store; a missing file is an empty store. A damaged
// one is reported, and read as empty (the next save replaces it).
func loadDevices(path string) (*deviceStore, error) {
	s := &deviceStore{path: path}
	var readErr error
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		readErr = fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &s.data); err != nil {
			s.data = deviceFile{}
			readErr = fmt.Errorf("read %s: %w", path, err)
		}
	}
	s.init()
	return s, readErr
}

// init gives an empty or damaged store its map and a salt.
func (s *deviceStore) init() {
	if s.data.Devices == nil {
		s.data.Devices = map[string]deviceEntry{}
	}
	if len(s.data.Salt) != 64 {
		var salt [32]byte
		_, _ = rand.Read(salt[:])
		s.data.Salt = hex.EncodeToString(salt[:])
		s.data.Devices = map[string]deviceEntry{} // keys under another salt are unreachable
	}
}

func (s *deviceStore) key(nir string) string {
	salt, _ := hex.DecodeString(s.data.Salt)
	m := hmac.New(sha256.New, salt)
	m.Write([]byte("nir:" + nir))
	return hex.EncodeToString(m.Sum(nil))
}

// token returns the device token remembered for a canonical NIR.
func (s *deviceStore) token(nir string) string {
	return s.data.Devices[s.key(nir)].Token
}

func (s *deviceStore) put(nir, token string, expires time.Time) error {
	s.data.Devices[s.key(nir)] = deviceEntry{Token: token, ExpiresAt: expires.UTC()}
	return s.save()
}

func (s *deviceStore) forget(nir string) error {
	k := s.key(nir)
	if _, ok := s.data.Devices[k]; !ok {
		return nil
	}
	delete(s.data.Devices, k)
	return s.save()
}

// save writes the file atomically (a temporary file renamed over it), mode
// 0600 from its creation.
func (s *deviceStore) save() error {
	if s.path == "" {
		return errors.New("no configuration directory for the devices file (use --devices-file)")
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".devices-*.json") // created 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := os.Rename(f.Name(), s.path); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}
