package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
)

// importState is the state file of an import (FILE.csv.import-state): how
// many rows of the file are done, where they end, and the SHA-256 of the
// file up to there, so that a run after a crash goes on after them only if
// that part of the file is the same. Written every second or so (a new
// file renamed over the old), removed once the whole file is done. The
// rows done after the last write are sent again by the next run and found
// present: the state file saves time, the NIR index keeps each account
// single.
type importState struct {
	path   string
	file   *os.File
	hash   hash.Hash // of the file's first `hashed` bytes
	hashed int64
	saved  savedImportState
	warned bool // a write failed and was reported once
}

// savedImportState is the file's content.
type savedImportState struct {
	Version int          `json:"version"`
	Rows    int          `json:"rows"`   // data rows done, from the file's first
	Line    int          `json:"line"`   // the line where the last of them starts
	Offset  int64        `json:"offset"` // the byte just after it
	SHA256  string       `json:"sha256"` // of the file's first Offset bytes
	Counts  importCounts `json:"counts"` // the rows done, by outcome
}

const importStateVersion = 1

// maxImportStateBytes bounds the state file read back.
const maxImportStateBytes = 4 << 10

// openImportState reads the state left at path by an earlier run of the
// import of file. It always returns a usable state: an empty one, with an
// error saying why, when the saved one cannot be read or no longer
// matches the file.
func openImportState(path string, file *os.File) (*importState, error) {
	st := &importState{path: path, file: file, hash: sha256.New()}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	defer f.Close()
	var saved savedImportState
	b, err := io.ReadAll(io.LimitReader(f, maxImportStateBytes+1))
	if err != nil {
		return st, err
	}
	if len(b) > maxImportStateBytes || json.Unmarshal(b, &saved) != nil || saved.Version != importStateVersion ||
		saved.Rows < 0 || saved.Offset < 0 || saved.Line < 0 {
		return st, fmt.Errorf("%s: état illisible", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(file, 0, saved.Offset))
	if err != nil {
		return st, err
	}
	if n != saved.Offset || hex.EncodeToString(h.Sum(nil)) != saved.SHA256 {
		return st, fmt.Errorf("%s: le fichier a changé depuis l'import interrompu", path)
	}
	st.hash, st.hashed, st.saved = h, saved.Offset, saved
	return st, nil
}

// save records that the first rows of the file are done, the last one
// starting at line and ending at offset. A failure is reported once on
// errw; the import goes on (a later run then starts further back).
func (st *importState) save(rows, line int, offset int64, counts importCounts, errw io.Writer) {
	err := st.write(rows, line, offset, counts)
	if err != nil && !st.warned {
		st.warned = true
		fmt.Fprintf(errw, "authctl: état de l'import non enregistré (%v) : une reprise repartirait de plus loin\n", err)
	}
}

func (st *importState) write(rows, line int, offset int64, counts importCounts) error {
	if offset < st.hashed {
		return fmt.Errorf("offset %d before %d", offset, st.hashed)
	}
	if _, err := io.Copy(st.hash, io.NewSectionReader(st.file, st.hashed, offset-st.hashed)); err != nil {
		return err
	}
	st.hashed = offset
	st.saved = savedImportState{Version: importStateVersion, Rows: rows, Line: line, Offset: offset,
		SHA256: hex.EncodeToString(st.hash.Sum(nil)), Counts: counts}
	b, err := json.Marshal(st.saved)
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, st.path)
}

// remove deletes the state file: the import is complete.
func (st *importState) remove(errw io.Writer) {
	if err := os.Remove(st.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(errw, "authctl: %v\n", err)
	}
}
