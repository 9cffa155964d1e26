listener "http" {
  address = "127.0.0.1:0"
}

app "a" {
  module = "a:app"
}
