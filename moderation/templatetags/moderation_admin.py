from django import template
from django.urls import reverse

from moderation.selectors import ADMIN_FIGURES

register = template.Library()


@register.simple_tag
def admin_figures():
    """[(label, value, link or None)] for the admin index's "At a glance"."""
    return [(label, figure(), reverse(url) if url else None) for label, figure, url in ADMIN_FIGURES]
