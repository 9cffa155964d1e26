listener "http" {
  address = "127.0.0.1:8000"
}

app "one" {
  module = "one:app"
  mount  = "/api"
}

app "two" {
  module = "two:app"
  mount  = "/api/"
}

app "four" {
  module = "four:app"
  hosts  = ["a.example"]
}

app "five" {
  module = "five:app"
  hosts  = ["b.example", "a.example"]
}

app "six" {
  module = "six:app"
  hosts  = ["c.example"]
}
