package deploycheck

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// root is the repository's root, where the deployment files are.
const root = "../.."

// stage is one FROM of the Dockerfile and its instructions.
type stage struct {
	base, name string
	instrs     []instr
}

type instr struct{ cmd, args string }

// parseDockerfile reads the Dockerfile simply: comments dropped, lines
// joined at a trailing backslash, the ARGs declared before the first FROM
// substituted in FROM lines (${NAME} form), as BuildKit does.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	var stages []stage
	for _, l := range lines {
		cmd, rest, _ := strings.Cut(l, " ")
		cmd, rest = strings.ToUpper(cmd), strings.TrimSpace(rest)
		switch {
		case cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		case cmd == "FROM":
			for k, v := range args {
				rest = strings.ReplaceAll(rest, "${"+k+"}", v)
			}
			f := strings.Fields(rest)
			st := stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) > 0:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, instr{cmd, rest})
		}
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return stages
}

// binaries lists cmd/: the programs the image must hold.
func binaries(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("cmd/ has no program")
	}
	return names
}

// imageBinDir is where the final stage puts the binaries: the directory the
// compose file's commands must name.
func imageBinDir(t *testing.T) string {
	t.Helper()
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	for _, in := range final.instrs {
		if in.cmd != "COPY" || !strings.HasPrefix(in.args, "--from=") {
			continue
		}
		f := strings.Fields(in.args)
		return strings.TrimSuffix(f[len(f)-1], "/")
	}
	t.Fatal("Dockerfile: the final stage copies nothing from a build stage")
	return ""
}

// The image: static binaries of every program of cmd/, built without cgo
// and without the build machine's paths, in a distroless (or scratch) final
// stage that runs as an unprivileged user.
func TestDockerfileBuildsEveryBinaryIntoADistrolessImage(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]

	base, tag, _ := strings.Cut(final.base, ":")
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("the final stage is FROM %s: want gcr.io/distroless/static-* or scratch (no shell, no libc: the binaries are static)", final.base)
	}
	if base != "scratch" && tag == "" {
		t.Errorf("the final stage's base %s has no tag", final.base)
	}
	user := ""
	for _, in := range final.instrs {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("the final stage runs as %q: want an unprivileged USER (nonroot, 65532)", user)
	}

	// The build: one go build of every program, static and reproducible.
	var buildStage, outDir string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.instrs {
			if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
				continue
			}
			buildStage = st.name
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("the go build lacks %s: %s", want, in.args)
				}
			}
			f := strings.Fields(in.args)
			if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) {
				outDir = strings.TrimSuffix(f[i+1], "/")
			}
			if !slices.Contains(f, "./cmd/...") {
				for _, b := range binaries(t) {
					if !slices.Contains(f, "./cmd/"+b) {
						t.Errorf("the go build does not build cmd/%s: %s", b, in.args)
					}
				}
			}
		}
	}
	if buildStage == "" || outDir == "" {
		t.Fatalf("no named build stage runs go build -o DIR/: %+v", stages)
	}
	copied := false
	for _, in := range final.instrs {
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from="+buildStage+" ") {
			f := strings.Fields(in.args)
			copied = strings.TrimSuffix(f[1], "/") == outDir
		}
	}
	if !copied {
		t.Errorf("the final stage does not copy %s/ from the stage %s", outDir, buildStage)
	}

	// The Go of the build stage is at least go.mod's.
	builder, _, _ := strings.Cut(stages[0].base, "-")
	img, ver, _ := strings.Cut(builder, ":")
	if img != "golang" {
		t.Fatalf("the first stage is FROM %s: want golang:VERSION", stages[0].base)
	}
	if need := goModVersion(t); compareVersions(ver, need) < 0 {
		t.Errorf("the build stage has Go %s, go.mod needs %s", ver, need)
	}
}

func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// compareVersions compares dotted numbers: 1.26.8 > 1.26.0 > 1.25.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// CGO_ENABLED=0 in the image must not change what the programs are: no
// package they import needs cgo, but the standard library's, which has
// pure-Go fallbacks (the DNS resolver, user lookups). This stands in for
// building the static binaries here: cold, that takes minutes of this
// machine's two cores (with CGO_ENABLED=0 and -trimpath nothing is shared
// with the test build's cache).
func TestBinariesNeedNoCgo(t *testing.T) {
	list := func(cgo string) []string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-f",
			"{{if .CgoFiles}}{{.ImportPath}} {{.Standard}}{{end}}{{if .Error}}ERROR {{.ImportPath}}: {{.Error}}{{end}}", "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("CGO_ENABLED=%s go list: %v\n%s", cgo, err, out)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, l := range list("1") {
		if l != "" && !strings.HasSuffix(l, " true") {
			t.Errorf("a package of the programs uses cgo, which the static image has not: %s", l)
		}
	}
	for _, l := range list("0") {
		if l != "" {
			t.Errorf("with CGO_ENABLED=0: %s", l)
		}
	}
}

// The build context leaves out what must never be in an image layer.
func TestDockerContextLeavesOutSecretsAndLocalData(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for _, want := range []string{".git", ".env", "secrets/", "var/"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
