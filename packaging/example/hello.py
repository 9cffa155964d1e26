"""The example site of the berth package: systemctl enable --now berth@example.socket"""


def app(environ, start_response):
    body = b"Hello from berth!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
