# Apps limited to hosts beside apps for any host.
listener "http" {
  address         = "127.0.0.1:8000"
  trusted_proxies = ["10.0.0.0/8"]
}

app "site" {
  module = "site:app"
}

app "admin" {
  module = "admin:app"
  mount  = "/blog/admin"
}

app "blog" {
  module = "blog:app"
  mount  = "/blog"
  hosts  = ["blog.example.com", "www.blog.example.com"]
}

app "shop" {
  module = "shop:app"
  mount  = "/shop;v=1"
  hosts  = ["shop.example.com"]
}
