"""Upload streaming: the file goes to a temporary file, never memory, and the upload is cut off
with 413 as soon as it outgrows the limit of its declared type, before any more of it is parsed
or written. A Content-Length above the largest limit is refused before parsing starts."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from imserver.api import MULTIPART_OVERHEAD, PayloadTooLarge


def upload_limit(kind):
    """The byte limit for a declared kind; the largest one while the kind is not known (yet)."""
    return settings.MEDIA_MAX_BYTES.get(kind, max(settings.MEDIA_MAX_BYTES.values()))


class UploadLimitHandler(FileUploadHandler):
    """First in the handler chain: counts each file's bytes and stops the upload past the limit."""

    def __init__(self, request):
        super().__init__(request)
        self.parser = None  # the multipart parser feeding this handler, set by MediaUploadParser
        self.limit = upload_limit(None)
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > upload_limit(None) + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(f"Uploads are limited to {upload_limit(None)} bytes")

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        # Django has no hook for form fields, so read the fields parsed so far: clients send
        # `type` before `file` (Dio, http, curl -F in order), which gives its own limit.
        self.limit = upload_limit(self.parser._post.get("type"))
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise PayloadTooLarge(f"The file is larger than {self.limit} bytes")
        return raw_data

    def file_complete(self, file_size):
        return None  # the temporary file handler after this one makes the file


class MediaUploadParser(parsers.MultiPartParser):
    """DRF's multipart parser with our handler chain: limit, then a temporary file on disk."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = {**request.META, "CONTENT_TYPE": media_type}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limiter = UploadLimitHandler(request)
        handlers = [limiter, TemporaryFileUploadHandler(request)]
        try:
            limiter.parser = DjangoMultiPartParser(meta, stream, handlers, encoding)
            return parsers.DataAndFiles(*limiter.parser.parse())
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from None
