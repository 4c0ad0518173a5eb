package rollgate_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates gen/ from proto/rollgate into a temporary directory, with
// the plugins built from the module versions go.mod pins, and compares it file by file with the
// committed code: a stale gen/ means scripts/generate-clients.sh was not run after a proto change.
func TestGeneratedCodeIsFresh(t *testing.T) {
	root := repoRoot()
	buf := filepath.Join(root, "node_modules", ".bin", "buf")
	if _, err := os.Stat(buf); err != nil {
		t.Fatalf("buf not found at %s (npm ci installs it): %v", buf, err)
	}
	tmp := t.TempDir()
	plugins := map[string]string{
		"protoc-gen-go":         "google.golang.org/protobuf/cmd/protoc-gen-go",
		"protoc-gen-connect-go": "connectrpc.com/connect/cmd/protoc-gen-connect-go",
	}
	for name, pkg := range plugins {
		build := exec.Command("go", "build", "-o", filepath.Join(tmp, "bin", name), pkg)
		build.Dir = filepath.Join(root, "clients", "go")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(tmp, "gen")
	plugin := func(name string) map[string]any {
		return map[string]any{"local": filepath.Join(tmp, "bin", name), "out": out, "opt": "paths=source_relative"}
	}
	template, err := json.Marshal(map[string]any{
		"version": "v2",
		"managed": map[string]any{
			"enabled":  true,
			"override": []any{map[string]any{"file_option": "go_package_prefix", "value": "rollgate/clients/go/gen"}},
		},
		"plugins": []any{plugin("protoc-gen-go"), plugin("protoc-gen-connect-go")},
	})
	if err != nil {
		t.Fatal(err)
	}
	gen := exec.Command(buf, "generate", "--template", string(template), "--path", "proto/rollgate")
	gen.Dir = root
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, out)
	}

	committed := filepath.Join(root, "clients", "go", "gen")
	want := readTree(t, out)
	got := readTree(t, committed)
	for path, content := range want {
		if c, ok := got[path]; !ok {
			t.Errorf("gen/%s is missing: run scripts/generate-clients.sh", path)
		} else if !bytes.Equal(c, content) {
			t.Errorf("gen/%s is stale: run scripts/generate-clients.sh", path)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("gen/%s is not generated from proto/rollgate any more: run scripts/generate-clients.sh", path)
		}
	}
	if len(want) == 0 {
		t.Fatal("buf generated nothing")
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = content
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
