listener "http" {
  address        = "127.0.0.1:8000"
  header_timeout = 10
}

app "hello" {
  module  = "hello:app"
  timeout = "3 seconds"
}
