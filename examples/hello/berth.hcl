# berth serve examples/hello/berth.hcl, then: curl http://127.0.0.1:8000/
listener "http" {
  address = "127.0.0.1:8000"
}

app "hello" {
  module  = "hello:app"
  workers = 2
}
