# nginx in front of a Unix socket whose group nginx's workers are in.
listener "http" {
  address      = "unix:/run/berth/shop.sock"
  socket_group = "www-data"
  idle_timeout = "20s"
}

app "shop" {
  module         = "shop.wsgi:application"
  timeout        = "60s"
  queue_timeout  = "2s"
  max_body_bytes = "100MiB"
}
