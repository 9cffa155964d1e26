from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("hello/<str:name>/", views.hello, name="hello"),
    path("notes/", views.note_list, name="note-list"),
    path("notes/new/", views.note_new, name="note-new"),
    path("notes/<int:note_id>/", views.note_detail, name="note-detail"),
    path("upload/", views.upload, name="upload"),
    path("static/<path:name>", views.static_file, name="static"),
    path("stream/<int:count>/", views.stream, name="stream"),
]
