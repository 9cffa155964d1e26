listener "http" {
  address = "127.0.0.1:8000"

app "hello" {
  module = "hello:app"
}
