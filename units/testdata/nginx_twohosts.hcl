listener "a" {
  address = "127.0.0.1:8000"
}

listener "b" {
  address = "127.0.0.1:8001"
}

app "a" {
  listener = "a"
  module   = "a:app"
  hosts    = ["example.com"]
}

app "b" {
  listener = "b"
  module   = "b:app"
  hosts    = ["example.com"]
}
