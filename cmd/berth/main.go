// Command berth is a systemd-native application server for Python WSGI
// apps. See README.md; `berth help` lists the commands.
package main

import "os"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		awakeSysmon()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
