listener "http" {
  address = "127.0.0.1:8000"
}

app "site" {
  module = "site:app"
}

app "api" {
  module = "api:app"
  mount  = "/api/"
}

app "api-v2" {
  module = "api2:app"
  mount  = "/api/v2"
}

app "blog" {
  module = "blog:app"
  hosts  = ["Blog.Example.com", "[2001:db8::1]"]
}
