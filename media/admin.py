from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from accounts.models import User
from imserver.admin_tools import LargeTableMixin, ReadOnlyMixin, admin_link
from media.models import Media
from media.storage import THUMBNAIL, media_url


@admin.register(Media)
class MediaAdmin(LargeTableMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Uploads, with image thumbnails (through short-lived signed URLs, as the app sees them)."""

    list_display = ("preview", "media_id", "kind", "filename", "size_shown", "owner_link", "attached_at", "created_at")
    list_filter = ("kind", "created_at", ("attached_at", admin.EmptyFieldListFilter))
    search_fields = ("filename", "owner__username")
    list_select_related = ("owner",)
    ordering = ("-pk",)
    fields = (
        "large_preview",
        "owner_link",
        "kind",
        "filename",
        "content_type",
        "size_shown",
        "width",
        "height",
        "duration",
        "attached_at",
        "created_at",
        "open",
    )

    # Not named "media": that is the ModelAdmin's own CSS/JS property (the detail page failed).
    @admin.display(description="media", ordering="pk")
    def media_id(self, media):
        return media.public_id

    @admin.display(description="size", ordering="size")
    def size_shown(self, media):
        return filesizeformat(media.size)

    @admin.display(description="owner")
    def owner_link(self, media):
        return admin_link(User, media.owner_id, media.owner.username)

    @admin.display(description="")
    def preview(self, media):
        return self._thumbnail(media, 48)

    @admin.display(description="preview")
    def large_preview(self, media):
        return self._thumbnail(media, 320)

    @admin.display(description="file")
    def open(self, media):
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">open (link valid for a while)</a>', media_url(media)
        )

    def _thumbnail(self, media, size):
        url = media_url(media, THUMBNAIL)  # None when there is none
        if url is None:
            return "-"
        return format_html('<img src="{}" alt="" style="max-width:{}px;max-height:{}px">', url, size, size)
