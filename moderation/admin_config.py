from django.contrib.admin.apps import AdminConfig


class AdminSiteConfig(AdminConfig):
    """django.contrib.admin, serving moderation.admin_site.Site as admin.site."""

    default_site = "moderation.admin_site.Site"
