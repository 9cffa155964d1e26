# berth serve examples/django/berth.hcl, then: curl http://127.0.0.1:8000/notes/
listener "http" {
  address = "127.0.0.1:8000"
}

app "notes" {
  module = "notes.wsgi:application"
  # Debian's python3-django (3.2) lives in the system interpreter.
  python  = "/usr/bin/python3"
  workers = 2
  env     = { DJANGO_SETTINGS_MODULE = "notes.settings" }
}
