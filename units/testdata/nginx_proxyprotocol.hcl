listener "http" {
  address         = "127.0.0.1:8000"
  proxy_protocol  = true
  trusted_proxies = ["10.0.0.0/8"]
}

app "a" {
  module = "a:app"
}
