# A TCP listener on every address that trusts no proxy.
listener "http" {
  address         = ":8000"
  trusted_proxies = []
}

app "shop" {
  module         = "shop:app"
  max_body_bytes = 1000
}
