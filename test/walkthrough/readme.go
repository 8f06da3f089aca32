// Package walkthrough holds the README to its word: it starts the demo
// with the README's own command, on the README's port, pastes the demo's
// export lines and then the walk-through's shell blocks, as they stand,
// into bash, and checks what each step answers; then it signs in to the
// demo's console in a real Chromium and approves and completes there.
package walkthrough

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// section returns the lines of the README's section titled heading (a
// "## " heading), up to the next "## " heading.
func section(readme, heading string) ([]string, error) {
	var out []string
	in := false
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.TrimPrefix(line, "## ") == heading
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		return nil, fmt.Errorf("README has no section %q", heading)
	}
	return out, nil
}

// shellBlocks returns the bodies of the ```sh blocks among lines.
func shellBlocks(lines []string) [][]string {
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range lines {
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// command is one shell command of a block, as it stands: with its
// continuation lines or here-document.
type command struct {
	text string
	// comment is the text of the comment lines that follow it (what the
	// README says it answers).
	comment string
}

// commands splits a block into its commands. Comment lines and blank lines
// between commands are not commands; a line ending in a backslash
// continues on the next; a here-document runs to its delimiter.
func commands(block []string) []command {
	var out []command
	for i := 0; i < len(block); i++ {
		line := block[i]
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			if n := len(out); n > 0 {
				out[n-1].comment += strings.TrimSpace(strings.TrimPrefix(trimmed, "#")) + "\n"
			}
			continue
		}
		text := line
		if delim, ok := hereDoc(line); ok {
			for i+1 < len(block) {
				i++
				text += "\n" + block[i]
				if block[i] == delim {
					break
				}
			}
		}
		for strings.HasSuffix(text, `\`) && i+1 < len(block) {
			i++
			text += "\n" + block[i]
		}
		out = append(out, command{text: text})
	}
	return out
}

// hereDoc reports the delimiter of a here-document that line starts.
func hereDoc(line string) (string, bool) {
	i := strings.Index(line, "<<")
	if i < 0 {
		return "", false
	}
	rest := strings.TrimSpace(strings.TrimPrefix(line[i+2:], "-"))
	rest = strings.Trim(strings.Fields(rest + " ")[0], `'"`)
	return rest, rest != ""
}

// shell is one bash process that the steps are pasted into, in turn, so
// that variables (ID, PID) carry from one to the next as in a terminal.
type shell struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// marker ends each step's output; it carries the step's exit status.
const marker = "\x1fstep-done"

// run pastes text and returns what it printed (stdout and stderr).
func (s *shell) run(text string) (string, error) {
	if _, err := fmt.Fprintf(s.in, "%s\nprintf '\\n%s %%s\\n' \"$?\"\n", text, marker); err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			return b.String(), fmt.Errorf("bash ended: %v", err)
		}
		if strings.HasPrefix(line, marker) {
			return strings.TrimSuffix(b.String(), "\n"), nil
		}
		b.WriteString(line)
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
