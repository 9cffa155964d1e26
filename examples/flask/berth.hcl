# berth serve examples/flask/berth.hcl, then: curl http://127.0.0.1:8000/items
listener "http" {
  address = "127.0.0.1:8000"
}

app "shop" {
  module = "shop:app"
  # Debian's python3-flask lives in the system interpreter.
  python  = "/usr/bin/python3"
  workers = 2
}
