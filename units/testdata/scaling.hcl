listener "http" {
  address = "127.0.0.1:8000"
}

app "hello" {
  module = "hello:app"
  workers {
    min          = 2
    max          = 16
    spawn_after  = "50ms"
    idle_timeout = "30s"
  }
  max_requests        = 1000
  max_requests_jitter = 50
  max_lifetime        = "1h"
  max_rss             = "512MiB"
  graceful_timeout    = "10s"
}
