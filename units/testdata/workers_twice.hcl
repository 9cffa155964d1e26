listener "http" {
  address = "127.0.0.1:8000"
}

app "hello" {
  module  = "hello:app"
  workers = 2
  workers {
    max = 4
  }
}

app "other" {
  listener = "http2"
  module   = "other:app"
  workers {
    min = 4
    max = 2
    idle_timeout = "soon"
  }
  max_lifetime = "-1h"
}

listener "http2" {
  address = "127.0.0.1:8001"
}
