listener "http" {
  address = "127.0.0.1:8000"
}

listener "http" {
  address = "127.0.0.1:8001"
}

app "hello" {
  module = "hello:app"
}

app "hello" {
  module = "other:app"
}
