"""An app that cannot be imported: berth must refuse to start and say why."""
import json

VALUE = json.loads("{not json")


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]
