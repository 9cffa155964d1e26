listener "http" {
  address = "127.0.0.1:8000"
}

app "three" {
  module = "three:app"
  mount  = "api/../x%20"
  hosts  = ["example.com:8080"]
}
