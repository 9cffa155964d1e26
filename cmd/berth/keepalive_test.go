package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// keepAliveLoad is clients that each keep one connection open and send
// requests on it with a pause between them, never retrying: unlike Go's
// http.Transport, which silently resends a request whose reused
// connection was closed under it, every request that gets no complete
// response is counted as failed. A response saying Connection: close is
// followed by a new connection, as any HTTP client does.
type keepAliveLoad struct {
	ok, failed, dials atomic.Int64
	stop              chan struct{}
	wg                sync.WaitGroup
	mu                sync.Mutex
	samples           []string
}

// startKeepAlive starts n such clients on addr, each pausing up to pause
// between requests (so that, at any moment, some are idle).
func startKeepAlive(addr, path string, n int, pause time.Duration) *keepAliveLoad {
	l := &keepAliveLoad{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.client(addr, path, pause)
		}()
	}
	return l
}

// client runs one client until stop.
func (l *keepAliveLoad) client(addr, path string, pause time.Duration) {
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(rand.N(pause + 1)):
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				l.fail("dial: " + err.Error())
				continue
			}
			l.dials.Add(1)
			conn, br = c, bufio.NewReader(c)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		resp, err := l.exchange(conn, br, req)
		if err != nil {
			l.fail(err.Error())
			conn.Close()
			conn = nil
			continue
		}
		if resp.StatusCode != 200 {
			l.fail(fmt.Sprintf("status %d", resp.StatusCode))
		} else {
			l.ok.Add(1)
		}
		if resp.Close {
			conn.Close()
			conn = nil
		}
	}
}

// exchange sends one request and reads its whole response.
func (l *keepAliveLoad) exchange(conn net.Conn, br *bufio.Reader, req string) (*http.Response, error) {
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return resp, nil
}

func (l *keepAliveLoad) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, s)
	}
	l.mu.Unlock()
}

// finish stops the clients and returns the counts.
func (l *keepAliveLoad) finish() (ok, failed, dials int64, samples []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.dials.Load(), l.samples
}
