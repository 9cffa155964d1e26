listener "http" {
  address = "127.0.0.1:8000"
}

app "one" {
  module = "one:app"
}

app "two" {
  module = "two:app"
}
