package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/berthd/berth/units"
)

// cmdNginx prints the nginx configuration that puts nginx in front of
// CONFIG's listeners; its warnings go to stderr as well.
func cmdNginx(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt units.NginxOptions
	var listen listFlag
	fs.Var(&listen, "listen", "nginx's listen address, repeatable (default 80, or 443 with --tls-cert)")
	names := fs.String("server-name", "", "server_name of the apps that answer any host (names separated by spaces or commas)")
	fs.StringVar(&opt.Name, "name", "", "prefix of the upstreams' names (default: the config file's name)")
	fs.StringVar(&opt.Listener, "listener", "", "render only this listener")
	fs.StringVar(&opt.TLSCert, "tls-cert", "", "TLS certificate: nginx terminates TLS (with --tls-key)")
	fs.StringVar(&opt.TLSKey, "tls-key", "", "TLS certificate's key")
	fs.StringVar(&opt.Redirect, "redirect", "80", "with --tls-cert: listen here for plain HTTP and redirect it to https (\"\" for nowhere)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth nginx [--listen ADDR]... [--server-name NAMES] [--tls-cert FILE --tls-key FILE] [--redirect ADDR] [--listener NAME] [--name NAME] CONFIG")
		return 2
	}
	cfg, ok := loadConfig(fs.Arg(0), stderr)
	if !ok {
		return 1
	}
	if opt.Name == "" {
		opt.Name = strings.TrimSuffix(filepath.Base(fs.Arg(0)), filepath.Ext(fs.Arg(0)))
	}
	opt.Listen = listen
	opt.ServerNames = strings.FieldsFunc(*names, func(r rune) bool { return r == ' ' || r == ',' })
	text, warnings, err := cfg.Nginx(opt)
	if err != nil {
		fmt.Fprintf(stderr, "berth nginx: %v\n", err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "berth nginx: warning: %s\n", w)
	}
	fmt.Fprint(stdout, text)
	return 0
}

// listFlag is a flag given once per value.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}
