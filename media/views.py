import asyncio
import mimetypes
import re
import threading
import time

from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from imserver.api import error_response, format_id, validated
from media import services
from media.models import Media
from media.serializers import MediaOut, MediaUploadIn, media_data
from media.storage import ORIGINAL, served_as, signature_valid
from media.uploads import MediaUploadParser

# Only re-encoded images live under this prefix; everything else needs a signed URL.
PUBLIC_PREFIXES = ("avatars/",)
SAFE_IMAGE_TYPES = {"image/jpeg", "image/png"}
RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
CHUNK_SIZE = 256 * 1024


@csrf_exempt  # nothing unsafe gets in (require_safe): a POST is a 405, not a CSRF 403
@require_safe
def public_file(request, name):
    """Serves avatars (public: unguessable names, images we re-encoded ourselves)."""
    content_type = mimetypes.guess_type(name)[0]
    if (
        not name.startswith(PUBLIC_PREFIXES)
        or ".." in name
        or content_type not in SAFE_IMAGE_TYPES
        or not default_storage.exists(name)
    ):
        return error_response(404, "Media not found")
    response = FileResponse(default_storage.open(name), content_type=content_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class MediaUploadView(APIView):
    """Upload of an image, video, audio or other file (contract 8)."""

    parser_classes = [MediaUploadParser]
    throttle_scope = "upload"

    @extend_schema(request={"multipart/form-data": MediaUploadIn}, responses={201: MediaOut})
    def post(self, request):
        data = validated(MediaUploadIn, request.data)
        # Closed here: DRF's parsed files are not the request's, which Django closes at its end,
        # and the garbage collector would try to delete a temporary file storage has moved.
        with data["file"] as uploaded_file:
            media = services.media_upload(owner=request.user, kind=data["type"], uploaded_file=uploaded_file)
        return Response(media_data(media), status=status.HTTP_201_CREATED)


def _requested_range(header, size):
    """The single byte range asked for as (start, end) inclusive; None to send the whole file (no
    header, or one we do not serve, such as several ranges); ValueError if none of it exists."""
    match = RANGE_RE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start > end:
        raise ValueError("unsatisfiable range")
    return start, end


def _file_chunks(file, start, length):
    """The file's bytes from start, in chunks: the whole file is never held in memory."""
    with file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(CHUNK_SIZE, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk


async def _in_threads(chunks):
    """The chunks for ASGI, each read in a worker thread: Django consumes a synchronous iterator
    whole into memory before sending it under ASGI, as it does an asynchronous one under WSGI."""
    # When the client goes away Django cancels us mid-read, but the read goes on in its thread:
    # the lock makes the closing wait for it.
    lock = threading.Lock()

    def locked(call, *args):
        with lock:
            return call(*args)

    try:
        while (chunk := await asyncio.to_thread(locked, next, chunks, None)) is not None:
            yield chunk
    finally:
        await asyncio.to_thread(locked, chunks.close)


@csrf_exempt  # as public_file
@require_safe
def media_file(request, media_id, variant=ORIGINAL):
    """An upload behind a signed, expiring URL (media.storage.media_url): no auth header needed,
    never rendered as a page (safe type, nosniff, a sandbox policy), byte ranges for players."""
    expires, signature = request.GET.get("exp", ""), request.GET.get("sig", "")
    if not signature_valid(format_id("media", media_id), variant, expires, signature):
        return error_response(403, "The link is invalid or has expired")
    media = Media.objects.filter(pk=media_id).first()
    name, content_type, disposition = served_as(media, variant) if media else ("", "", "")
    if not name or not default_storage.exists(name):
        return error_response(404, "Media not found")
    size = default_storage.size(name)
    try:
        byte_range = _requested_range(request.headers.get("Range", ""), size)
    except ValueError:
        return error_response(416, "Range not satisfiable", {"Content-Range": f"bytes */{size}"})
    start, end = byte_range or (0, size - 1)
    if request.method == "HEAD":
        response = HttpResponse(content_type=content_type)
    else:
        chunks = _file_chunks(default_storage.open(name), start, end - start + 1)
        if isinstance(request, ASGIRequest):
            chunks = _in_threads(chunks)
        response = StreamingHttpResponse(chunks, content_type=content_type)
    if byte_range:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = f"private, max-age={max(0, int(expires) - int(time.time()))}"
    return response
