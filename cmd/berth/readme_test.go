package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// quickStartHeading opens the README section whose commands
// TestQuickStart runs.
const quickStartHeading = "## Quick start"

// quickStart returns the commands of the README's quick start: each
// line of its indented code blocks, without its trailing comment.
func quickStart(t *testing.T) (file string, cmds []readmeCmd) {
	t.Helper()
	for _, name := range []string{"../../README.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		_, section, ok := strings.Cut("\n"+string(b), "\n"+quickStartHeading+"\n")
		if !ok {
			continue
		}
		if end := strings.Index(section, "\n## "); end >= 0 {
			section = section[:end]
		}
		for _, line := range strings.Split(section, "\n") {
			if code, ok := strings.CutPrefix(line, "    "); ok && strings.TrimSpace(code) != "" {
				cmds = append(cmds, parseReadmeCmd(code))
			}
		}
		return name, cmds
	}
	t.Fatalf("README.md has no %q section", quickStartHeading)
	return "", nil
}

// readmeCmd is one command of the quick start.
type readmeCmd struct {
	line string
	// expect is what its output must contain: the comment's text after
	// its last ": " ("# in another shell: Hello, World!").
	expect string
}

var commentRE = regexp.MustCompile(`\s+#\s(.*)$`)

func parseReadmeCmd(code string) readmeCmd {
	c := readmeCmd{line: strings.TrimSpace(code)}
	if m := commentRE.FindStringSubmatchIndex(c.line); m != nil {
		comment := c.line[m[2]:m[3]]
		c.line = strings.TrimSpace(c.line[:m[0]])
		if i := strings.LastIndex(comment, ": "); i >= 0 {
			c.expect = comment[i+2:]
		}
	}
	return c
}

// TestQuickStart runs the README's quick start as written, so that it
// cannot drift from what berth does: in a copy of examples/, with the
// berth under test and Debian's python3 first on PATH. `cd` moves
// between commands; a `berth serve` that does not write to a file keeps
// running (until the next one) while the commands after it run against
// it; every other command must succeed, and print what its comment says
// after ": ". The one liberty: port 8000 becomes a free port, given with
// -b where the README relies on the default, since the machine is shared.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the quick start uses curl: apt-get install curl")
	}
	file, cmds := quickStart(t)
	t.Logf("running %d commands of %s", len(cmds), file)
	root := t.TempDir()
	if out, err := exec.Command("cp", "-r", "../../examples", root).CombinedOutput(); err != nil {
		t.Fatalf("copying examples: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))
	env := []string{"PATH=" + filepath.Dir(e2e.Bin) + ":" + filepath.Dir(e2e.SystemPython(t)) + ":" + os.Getenv("PATH")}
	dir := root
	var served, curled int
	var running *e2e.Instance
	for _, c := range cmds {
		line := localize(c.line, addr)
		switch {
		case strings.HasPrefix(line, "cd "):
			dir = filepath.Join(dir, strings.TrimSpace(strings.TrimPrefix(line, "cd ")))
		case strings.HasPrefix(line, "berth serve ") && !strings.ContainsAny(line, ">|") && !strings.Contains(line, "--print-config"):
			if running != nil {
				running.Stop()
			}
			running = startShell(t, dir, env, line)
			served++
		default:
			out := runShell(t, dir, env, line)
			if !strings.Contains(out, c.expect) {
				t.Errorf("%s printed %q, want %q (its comment says so)", c.line, out, c.expect)
			}
			if strings.HasPrefix(line, "curl ") {
				curled++
			}
		}
	}
	if served == 0 || curled == 0 {
		t.Errorf("the quick start served %d times and asked %d times: it must show serving an app and asking it", served, curled)
	}
}

// localize moves the README's port 8000 to addr, and gives a `berth
// serve` of a module that relies on the default bind that address.
func localize(line, addr string) string {
	line = strings.ReplaceAll(line, "127.0.0.1:8000", addr)
	head, redirect, redirected := strings.Cut(line, ">")
	f := strings.Fields(head)
	if len(f) > 2 && f[0] == "berth" && f[1] == "serve" && !strings.Contains(head, ".hcl") &&
		!strings.Contains(head, " -b ") && !strings.Contains(head, "--bind") {
		line = strings.TrimSpace(head) + " -b " + addr
		if redirected {
			line += " >" + redirect
		}
	}
	return line
}

// startShell runs a long-running command line until berth says ready.
func startShell(t *testing.T, dir string, env []string, line string) *e2e.Instance {
	t.Helper()
	inst := e2e.LaunchWith(t, "", func(c *exec.Cmd) {
		c.Path, c.Args = "/bin/sh", []string{"sh", "-c", "exec " + line}
		c.Dir = dir
		c.Env = append(os.Environ(), env...)
	})
	if err := inst.WaitFor(`INFO  ready `, 30*time.Second); err != nil {
		t.Fatalf("%s did not become ready: %v\n%s", line, err, inst.Logs)
	}
	return inst
}

// runShell runs a command line that must succeed, and returns its
// standard output.
func runShell(t *testing.T, dir string, env []string, line string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s (in %s): %v\n%s%s", line, dir, err, out, stderr.String())
	}
	return string(out)
}
