package units

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DiagError is a configuration that did not validate. It carries every
// diagnostic, not just the first, so one `berth check` shows all mistakes.
type DiagError struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// Error is one line per diagnostic: "file:line:col: summary: detail".
func (e *DiagError) Error() string {
	var lines []string
	for _, d := range e.Diags {
		lines = append(lines, headline(d))
	}
	return strings.Join(lines, "\n")
}

// headline is "file:line:col: error: summary: detail" on one line.
func headline(d *hcl.Diagnostic) string {
	detail := strings.ReplaceAll(d.Detail, "\n", " ")
	if detail == "" {
		return position(d)
	}
	return position(d) + ": " + detail
}

// position is "file:line:col: error: summary".
func position(d *hcl.Diagnostic) string {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	where := ""
	if d.Subject != nil {
		where = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	return fmt.Sprintf("%s%s: %s", where, sev, d.Summary)
}

// Format writes each diagnostic as its headline, the source line it points
// at and a caret line under the offending range, like a compiler does.
func (e *DiagError) Format(w io.Writer) {
	for _, d := range e.Diags {
		fmt.Fprintln(w, position(d))
		if d.Subject != nil {
			if f := e.Files[d.Subject.Filename]; f != nil {
				snippet(w, f.Bytes, *d.Subject)
			}
		}
		if d.Detail != "" {
			for _, l := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
		fmt.Fprintln(w)
	}
}

// snippet prints the first source line of rng with carets under it.
func snippet(w io.Writer, src []byte, rng hcl.Range) {
	lines := bytes.Split(src, []byte("\n"))
	if rng.Start.Line < 1 || rng.Start.Line > len(lines) {
		return
	}
	line := strings.TrimRight(string(lines[rng.Start.Line-1]), "\r")
	num := fmt.Sprintf("%d", rng.Start.Line)
	fmt.Fprintf(w, " %s | %s\n", num, line)
	start := rng.Start.Column - 1
	end := rng.End.Column - 1
	if rng.End.Line != rng.Start.Line || end > len(line) {
		end = len(line)
	}
	if start > len(line) {
		start = len(line)
	}
	if end <= start {
		end = start + 1
	}
	pad := []byte(line[:start])
	for i, c := range pad {
		if c != '\t' {
			pad[i] = ' '
		}
	}
	fmt.Fprintf(w, " %s | %s%s\n", strings.Repeat(" ", len(num)), pad, strings.Repeat("^", end-start))
}
