listener "http" {
}

listener "admin" {
  address = "127.0.0.1:9000"
}

app "hello" {
  python = "python3"
}

server "x" {
}
