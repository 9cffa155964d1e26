listener "http" {
  address = "localhost"
}

app "hello" {
  module         = "hello-world:app"
  workers        = 0
  max_body_bytes = "lots"
  scheduling     = "fifo"
}
