"""Views of the notes example."""
import hashlib
import os

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

NOTES = {
    1: {"id": 1, "title": "Buy tea", "body": "Assam, loose leaf."},
    2: {"id": 2, "title": "Call Ada", "body": "About the analytical engine."},
}

MAX_STREAM_LINES = 100_000


@require_safe
def index(request):
    return HttpResponse(
        "Notes, a Django example served by berth.\n"
        "Try /hello/you/, /notes/, /notes/1/, /notes/new/, /static/notes.css, /stream/5/\n"
        "and POST a file to /upload/.\n",
        content_type="text/plain; charset=utf-8",
    )


@require_safe
def hello(request, name):
    return HttpResponse("Hello, %s!\n" % name, content_type="text/plain; charset=utf-8")


@require_safe
def note_list(request):
    return JsonResponse({"notes": [NOTES[k] for k in sorted(NOTES)]})


@require_safe
def note_detail(request, note_id):
    note = NOTES.get(note_id)
    if note is None:
        return JsonResponse({"error": "no such note", "id": note_id}, status=404)
    return JsonResponse(note)


@require_http_methods(["GET", "POST"])
def note_new(request):
    """A form whose POST CsrfViewMiddleware checks: without the token of the
    GET (in the form or the X-CSRFToken header) it answers 403."""
    if request.method == "POST":
        title = request.POST.get("title", "").strip()
        if not title:
            return render(request, "notes/new.html", {"error": "A note needs a title."}, status=400)
        # A real app would save it; the notes here live in memory, per worker.
        return render(request, "notes/saved.html", {"title": title, "body": request.POST.get("body", "")})
    return render(request, "notes/new.html")


# An API endpoint for `curl -F file=@x`, so exempt from the CSRF check that a
# browser form (see note_new) gets.
@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES.get("file")
    if f is None:
        return JsonResponse({"error": "no file field"}, status=400)
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse(
        {
            "name": f.name,
            "content_type": f.content_type,
            "size": size,
            "reported_size": f.size,
            "sha256": digest.hexdigest(),
            # Django keeps small uploads in memory and spools large ones to disk.
            "stored": "disk" if isinstance(f, TemporaryUploadedFile) else "memory",
            "comment": request.POST.get("comment", ""),
        }
    )


@require_safe
def static_file(request, name):
    """A file shipped in notes/static, as a FileResponse (which a server's
    wsgi.file_wrapper may send; otherwise it is read in blocks)."""
    root = os.path.realpath(settings.STATIC_DIR)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        raise Http404("no such file")
    return FileResponse(open(path, "rb"))


@require_safe
def stream(request, count):
    """count numbered lines, each sent as the generator yields it."""
    if count > MAX_STREAM_LINES:
        return HttpResponseBadRequest("at most %d lines\n" % MAX_STREAM_LINES)

    def lines():
        for i in range(count):
            yield ("line %06d %s\n" % (i, "." * 1000)).encode()
        yield b"end\n"

    return StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
