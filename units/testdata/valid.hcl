listener "http" {
  address = "127.0.0.1:8000"
}

listener "admin" {
  address          = "unix:admin.sock"
  header_timeout   = "5s"
  max_header_bytes = "32KiB"
  socket_mode      = "0600"
  socket_user      = "www-data"
}

app "shop" {
  listener       = "http"
  module         = "shop.wsgi:application"
  python         = "venv/bin/python"
  chdir          = "src"
  pythonpath     = ["lib", "/opt/extra"]
  workers        = 3
  timeout        = "45s"
  queue          = 64
  queue_timeout  = "2s"
  max_body_bytes = "1MiB"
  scheduling     = "normal"
  env = {
    DJANGO_SETTINGS_MODULE = "shop.settings"
  }
}

app "tools" {
  listener = "admin"
  module   = "tools:create_app()"
}

log {
  format = "json"
  level  = "warn"
  access = false
}
