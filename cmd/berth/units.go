package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthd/berth/units"
)

// cmdUnits prints (or writes) the systemd units that run CONFIG.
func cmdUnits(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("units", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "unit name: NAME.service and NAME.socket (default: the config file's name)")
	bin := fs.String("berth", "", "path of the berth binary in ExecStart= (default: this binary)")
	user := fs.String("user", "", "run the service as this user (and group of the same name); default: the dynamic user berth")
	root := fs.Bool("root", false, "run the service as root (refused otherwise: an app's bug would be root's)")
	watchdog := fs.Duration("watchdog", 30*time.Second, "WatchdogSec=")
	dir := fs.String("dir", "", "write the units into this directory instead of printing them")
	template := fs.Bool("template", false, "render the packaged template units berth@.socket and berth@.service (no CONFIG)")
	pkg := fs.String("package", "deb", "with --template: the package format, deb or rpm, whose nginx group the socket is given to")
	instance := fs.String("instance", "", "render the drop-in that makes berth@INSTANCE.socket listen where CONFIG's listener \"http\" says")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *template {
		if *bin == "" {
			*bin = "/usr/bin/berth"
		}
		group, ok := units.PackageSocketGroups[*pkg]
		if !ok {
			fmt.Fprintf(stderr, "berth units: --package %q: want deb or rpm\n", *pkg)
			return 2
		}
		return writeUnits(units.Template(*bin, group), *dir, stdout, stderr)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth units [--name NAME] [--berth PATH] [--user USER | --root] [--dir DIR] CONFIG\n       berth units --instance NAME [--dir DIR] CONFIG\n       berth units --template [--package deb|rpm] [--dir DIR]")
		return 2
	}
	cfg, ok := loadConfig(fs.Arg(0), stderr)
	if !ok {
		return 1
	}
	if *instance != "" {
		f, err := cfg.InstanceDropIn(*instance)
		if err != nil {
			fmt.Fprintf(stderr, "berth units: %v\n", err)
			return 1
		}
		return writeUnits([]units.UnitFile{f}, *dir, stdout, stderr)
	}
	abs, _ := filepath.Abs(fs.Arg(0))
	if *name == "" {
		*name = strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "berth units: finding this binary: %v (use --berth)\n", err)
			return 1
		}
		*bin = exe
	}
	if (*user == "root" || *user == "0") && !*root {
		fmt.Fprintln(stderr, "berth units: refusing to run a site as root; give --root to mean it, or drop --user for the unprivileged default")
		return 2
	}
	files, err := cfg.Units(units.UnitOptions{Name: *name, Berth: *bin, Config: abs, User: *user, Group: *user, Root: *root, Watchdog: *watchdog})
	if err != nil {
		fmt.Fprintf(stderr, "berth units: %v\n", err)
		return 1
	}
	return writeUnits(files, *dir, stdout, stderr)
}

// writeUnits prints files, or writes them under dir.
func writeUnits(files []units.UnitFile, dir string, stdout, stderr io.Writer) int {
	for _, f := range files {
		if dir == "" {
			fmt.Fprintf(stdout, "### %s\n%s\n", f.Name, f.Content)
			continue
		}
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fmt.Fprintf(stderr, "berth units: %v\n", err)
			return 1
		}
		if err := os.WriteFile(path, []byte(f.Content), 0o644); err != nil {
			fmt.Fprintf(stderr, "berth units: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, path)
	}
	return 0
}
