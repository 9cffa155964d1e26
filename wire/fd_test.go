package wire

import (
	"bufio"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestFDConn sends frames with and without descriptors in one stream and
// checks that each frame that announces one gets its own, in order,
// however the reads split the stream.
func TestFDConn(t *testing.T) {
	a, b := unixPair(t)
	dir := t.TempDir()
	var files []*os.File
	for _, name := range []string{"one", "two", "three"} {
		f, err := os.Create(dir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("content of " + name)
		files = append(files, f)
		defer f.Close()
	}
	frame := func(typ Type, payload string) []byte {
		b := make([]byte, HeaderSize, HeaderSize+len(payload))
		PutHeader(b, typ, 0, len(payload))
		return append(b, payload...)
	}
	wrote := make(chan struct{})
	defer func() { <-wrote }()
	go func() {
		defer close(wrote)
		a.Write(frame(TypeBody, "plain"))
		WriteWithFile(a, frame(TypeFile, "one"), files[0])
		WriteWithFile(a, frame(TypeFile, "two"), files[1])
		a.Write(frame(TypeBody, "plain again"))
		WriteWithFile(a, frame(TypeFile, "three"), files[2])
		a.Close()
	}()
	fc := NewFDConn(b)
	defer fc.Close()
	// A small buffer: reads split frames.
	r := NewReader(bufio.NewReaderSize(fc, 16))
	var got []string
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != TypeFile {
			got = append(got, string(f.Payload))
			continue
		}
		name := string(f.Payload)
		file, err := fc.TakeFile(name)
		if err != nil {
			t.Fatalf("frame %s: %v", name, err)
		}
		content, err := io.ReadAll(io.NewSectionReader(file, 0, 100))
		file.Close()
		if err != nil || string(content) != "content of "+name {
			t.Errorf("frame %s came with a file holding %q (%v)", name, content, err)
		}
		got = append(got, name)
	}
	if want := "plain one two plain again three"; joined(got) != want {
		t.Errorf("frames %q, want %q", joined(got), want)
	}
	if _, err := fc.TakeFile("none"); err == nil {
		t.Error("TakeFile with no descriptor left succeeded")
	}
}

func joined(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
