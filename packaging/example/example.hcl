# An example site. Each file /etc/berth/NAME.hcl is a site, served by
#   systemctl enable --now berth@NAME.socket
# The template socket listens on /run/berth/NAME.sock (listener "http"),
# mode 0660, group www-data (Debian) or nginx (RPM): nginx reaches it with
#   proxy_pass http://unix:/run/berth/NAME.sock;
# For a TCP port, or another socket_mode, socket_user or socket_group:
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
