# An example site. Each file /etc/berth/NAME.hcl is a site, served by
#   systemctl enable --now berth@NAME.socket
# The template socket listens on /run/berth/NAME.sock (listener "http");
# for a TCP port instead:
#   berth units --instance NAME --dir /etc/systemd/system /etc/berth/NAME.hcl
#   systemctl daemon-reload && systemctl restart berth@NAME.socket
# Reference: /usr/share/doc/berth/README.md

listener "http" {
  address = "unix:/run/berth/example.sock"
}

app "example" {
  module  = "hello:app"
  python  = "/usr/bin/python3"
  chdir   = "/usr/share/berth/example"
  workers = 2
}
