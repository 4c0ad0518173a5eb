package rollgate_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the repository root, found from this file's location (clients/go/server_test.go).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// testServer is a real rollgate server process (node dist/src/cli/main.js serve).
type testServer struct {
	URL    string
	Port   int
	DB     string
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer starts rollgate on listen ("127.0.0.1:0" for a free port) with the database db
// and extra flags, and returns once it has logged "ready" (its state is loaded).
func startServer(listen, db string, extra ...string) (*testServer, error) {
	main := filepath.Join(repoRoot(), "dist", "src", "cli", "main.js")
	if _, err := os.Stat(main); err != nil {
		return nil, fmt.Errorf("%s missing: build the server first (npx tsc -b at the repository root): %w", main, err)
	}
	args := append([]string{main, "serve", "--listen", listen, "--db", db}, extra...)
	cmd := exec.Command("node", args...)
	if cpus := os.Getenv("ROLLGATE_SERVER_CPUS"); cpus != "" {
		// Benchmarks pin the server apart from the client (taskset -c 0 for the server).
		cmd = exec.Command("taskset", append([]string{"-c", cpus, "node"}, args...)...)
	}
	cmd.Env = append(os.Environ(), "LOG_LEVEL=info")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &testServer{DB: db, cmd: cmd, exited: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	type line struct {
		Msg     string `json:"msg"`
		Port    int    `json:"port"`
		Address string `json:"address"`
	}
	listening := make(chan int, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		readyClosed := false
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			switch {
			case l.Msg == "listening" && l.Port > 0:
				listening <- l.Port
			case l.Msg == "ready" && !readyClosed:
				readyClosed = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.After(30 * time.Second)
	select {
	case s.Port = <-listening:
	case <-s.exited:
		return nil, fmt.Errorf("rollgate exited before listening: %s", s.stderr.String())
	case <-deadline:
		s.kill()
		return nil, errors.New("rollgate did not log listening within 30 s")
	}
	select {
	case <-ready:
	case <-s.exited:
		return nil, fmt.Errorf("rollgate exited before ready: %s", s.stderr.String())
	case <-deadline:
		s.kill()
		return nil, errors.New("rollgate did not log ready within 30 s")
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	return s, nil
}

// stop shuts the server down gracefully (SIGTERM), killing it if that takes over 15 s.
func (s *testServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.kill()
	}
}

func (s *testServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// startTestServer starts a server with its own database in a test's temporary directory and
// stops it when the test ends.
func startTestServer(t *testing.T, extra ...string) *testServer {
	t.Helper()
	s, err := startServer("127.0.0.1:0", filepath.Join(t.TempDir(), "rollgate.db"), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// shared is the server most tests use, started once by TestMain.
var shared *testServer

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rollgate-go-client-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = startServer("127.0.0.1:0", filepath.Join(dir, "rollgate.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test server:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	shared.stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
