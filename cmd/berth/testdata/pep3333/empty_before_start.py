"""Empty chunks yielded before start_response is called at all.

PEP 3333 asks for start_response before the first *non-empty* body
bytestring, since the server sends nothing for an empty one, and says
servers must not assume start_response was called before they iterate.

Not validated: wsgiref.validate.validator asserts that start_response was
called before the iterable yields anything, even b"" ("The application
returns and we started iterating over its body, but start_response has not
yet been called"), which is stricter than the PEP and forbids exactly what
this probe does.
"""


def app(environ, start_response):
    def body():
        yield b""
        yield b""
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pep-Late", "yes")])
        yield b""
        yield b"started late\n"

    return body()
