package main

import (
	"os"
	"testing"

	"github.com/berthd/berth/internal/e2e"
)

// The end-to-end tests run the real berth binary, built once here by the
// harness in internal/e2e, with real Python workers, and talk HTTP to it
// over loopback.
func TestMain(m *testing.M) { os.Exit(e2e.Main(m, ".")) }
