"""Building blocks of imserver's admin, shared by the apps' admin modules.

- LargeTableMixin: defaults for tables that grow to millions of rows.
- ReadOnlyMixin: nothing is added, edited or deleted in the admin; changes go through actions,
  which call the same services as the API and the commands.
- confirm_with_reason: an action's intermediate page asking for a reason (or note).
- ObjectActionsMixin: some actions as buttons on an object's own page.
- ActionRefused: what an action raises for an object it cannot act on (moderation.services'
  ModerationError is one); the moderator is told and the other objects go ahead.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html


class ActionRefused(Exception):
    """An admin action that cannot be carried out on one object; its message is shown."""


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered list of a big table from PostgreSQL's statistics (pg_class.reltuples,
    kept by autovacuum) instead of COUNT(*), which reads the whole table. Filtered lists, small
    tables and other databases are counted exactly."""

    exact_below = 100_000

    @cached_property
    def count(self):
        estimate = self._estimate()
        return estimate if estimate is not None and estimate >= self.exact_below else super().count

    def _estimate(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [queryset.model._meta.db_table]
            )
            row = cursor.fetchone()
        return row[0] if row and row[0] >= 0 else None  # -1: never analyzed


class LargeTableMixin:
    """Changelists that stay fast on big tables: no second, unfiltered COUNT(*) beside a filtered
    one, no facet counts, estimated counts for unfiltered lists. Subclasses still owe
    list_select_related (or annotations) so that rows cost no query each."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


class NameSearchMixin:
    """The search box finds rows by their names through the same index as the app's search
    (imserver/namesearch.py: any script, by substring, full and half width alike); `search_also`
    fields (an email) match as the admin's own search does. search_fields still shows the box."""

    search_also = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(search_document__matches=term)
        for field in self.search_also:
            condition |= Q(**{f"{field}__icontains": term})
        return queryset.filter(condition), False


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def admin_link(model, pk, text):
    """A link to an object's admin page, built from its id alone (no query)."""
    opts = model._meta
    return format_html(
        '<a href="{}">{}</a>', reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]), text
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)

    def __init__(self, *args, label, required, count=None, title="", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = label
        self.fields["reason"].required = required
        self.count = count
        if count is not None:  # more than a page: the number is typed to confirm it
            self.fields["confirm_count"] = forms.IntegerField(
                label=f"This will {title[:1].lower()}{title[1:]}: {count:,} in all. Type {count} to confirm"
            )

    def clean_confirm_count(self):
        if self.cleaned_data["confirm_count"] != self.count:
            raise forms.ValidationError(f"Type the number of objects this acts on: {self.count}.")
        return self.count


SHOWN_ON_CONFIRMATION = 50


def confirm_with_reason(modeladmin, request, queryset, *, title, apply, label="Reason", required=True):
    """An admin action that asks for a reason on an intermediate page, then calls
    apply(obj, reason) for each selected object; an ActionRefused skips that object and is
    reported. Returns None when done (back to the list) or the page to show.

    Over more than a page ("select all", or more objects than the list shows), the page says how
    many it will act on and the moderator types that number to confirm it."""
    select_across = request.POST.get("select_across") == "1"
    count = queryset.count()
    large = select_across or count > modeladmin.list_per_page
    form = ReasonForm(
        request.POST if "confirm" in request.POST else None,
        label=label,
        required=required,
        count=count if large else None,
        title=title,
    )
    if form.is_valid():
        done = 0
        for obj in queryset:
            try:
                apply(obj, form.cleaned_data["reason"])
                done += 1
            except ActionRefused as exc:
                modeladmin.message_user(request, str(exc), messages.WARNING)
        if done:
            modeladmin.message_user(request, f"{title}: done for {done}.", messages.SUCCESS)
        return None
    shown = list(queryset[: SHOWN_ON_CONFIRMATION + 1])
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "objects": shown[:SHOWN_ON_CONFIRMATION],
        "more": len(shown) > SHOWN_ON_CONFIRMATION,
        "form": form,
        "action": request.POST["action"],
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": select_across,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/moderation/confirm_with_reason.html", context)


class ObjectActionsMixin:
    """Offers actions as buttons on an object's page ("Ban…" on a user's). A button posts to the
    changelist as if the object had been selected there, so the action runs exactly as from the
    list, permissions included."""

    change_form_template = "admin/moderation/change_form.html"

    def get_object_actions(self, obj):
        """[(action name, button label)] that make sense for obj."""
        return []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            allowed = self.get_actions(request)
            context["object_actions"] = [
                (name, label) for name, label in self.get_object_actions(obj) if name in allowed
            ]
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
