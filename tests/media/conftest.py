import pytest

from tests.media.files import upload


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "storage"


def post_upload(client, data, kind, name="upload.bin"):
    """POST /v1/media/upload with `type` before `file`, as the app's HTTP clients send them."""
    return client.post("/v1/media/upload", {"type": kind, "file": upload(data, name)}, format="multipart")
