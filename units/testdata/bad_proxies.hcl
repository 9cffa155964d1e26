listener "http" {
  address         = "127.0.0.1:8000"
  trusted_proxies = ["10.0.0.0/33", "unix"]
  socket_mode     = "0660"
}

listener "lb" {
  address         = "unix:/run/lb.sock"
  socket_mode     = "rw-rw----"
  trusted_proxies = []
  proxy_protocol  = true
}

admin {
  address     = "127.0.0.1:9191"
  drain_delay = "soon"
}

app "a" {
  listener = "http"
  module   = "a:app"
}
