package activation

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPassedSockets runs a helper process the way systemd starts berth:
// listening sockets from fd 3 on, LISTEN_FDS, LISTEN_PID and
// LISTEN_FDNAMES in its environment.
func TestPassedSockets(t *testing.T) {
	if os.Getenv("BERTH_ACTIVATION_HELPER") == "1" {
		helper()
		return
	}
	http, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer http.Close()
	extra, _ := net.Listen("tcp", "127.0.0.1:0")
	defer extra.Close()
	hf, _ := http.(*net.TCPListener).File()
	ef, _ := extra.(*net.TCPListener).File()
	// LISTEN_PID must be the helper's own pid, known only once it runs.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" -test.run=TestPassedSockets`, os.Args[0])
	cmd.ExtraFiles = []*os.File{hf, ef}
	cmd.Env = append(os.Environ(), "BERTH_ACTIVATION_HELPER=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:extra")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"http passed=true addr=" + http.Addr().String(),
		"fallback passed=false",
		"unused=[extra]",
		"env unset",
		"accepted after close",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("helper output lacks %q:\n%s", want, got)
		}
	}
	// The passed socket still accepts after the helper closed everything.
	c, err := net.Dial("tcp", http.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func helper() {
	set := Inherit()
	socks, err := set.Listen([]Spec{
		{Name: "http", Network: "tcp", Address: "127.0.0.1:1"}, // ignored: systemd passed "http"
		{Name: "fallback", Network: "tcp", Address: "127.0.0.1:0"},
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, s := range socks {
		fmt.Printf("%s passed=%v addr=%s\n", s.Name, s.Passed, s.Addr())
	}
	fmt.Printf("unused=%v\n", set.Unused())
	if os.Getenv("LISTEN_FDS") == "" && os.Getenv("LISTEN_PID") == "" {
		fmt.Println("env unset")
	}
	// Closing the socket and a server's listener must leave a passed
	// socket accepting.
	http := socks[0]
	ln, _ := http.Listener()
	ln.Close()
	http.Close()
	ln, err = http.Listener()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	go func() {
		c, err := net.Dial("tcp", http.Addr())
		if err == nil {
			c.Close()
		}
	}()
	if c, err := ln.Accept(); err == nil {
		c.Close()
		fmt.Println("accepted after close")
	}
	os.Exit(0)
}
