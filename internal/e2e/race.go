//go:build race

package e2e

// Under `go test -race` the berth binary of the end-to-end tests is built
// with the race detector too, so that races in the server are caught.
func init() { BuildFlags = append(BuildFlags, "-race") }
