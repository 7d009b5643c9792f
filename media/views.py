import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404

# Only re-encoded images live under this prefix; everything else needs a signed URL.
PUBLIC_PREFIXES = ("avatars/",)
SAFE_IMAGE_TYPES = {"image/jpeg", "image/png"}


def public_file(request, name):
    """Serves avatars (public: unguessable names, images we re-encoded ourselves)."""
    if not name.startswith(PUBLIC_PREFIXES) or ".." in name or not default_storage.exists(name):
        raise Http404
    content_type = mimetypes.guess_type(name)[0]
    if content_type not in SAFE_IMAGE_TYPES:
        raise Http404
    response = FileResponse(default_storage.open(name), content_type=content_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    return response
