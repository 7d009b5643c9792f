"""Moderators also see a message's edit history on its page (docs/moderation.md)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    chat = apps.get_app_config("chat")
    chat.models_module = True
    create_permissions(chat, apps=apps, verbosity=0)
    chat.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    moderators, _ = Group.objects.get_or_create(name="Moderators")
    moderators.permissions.add(Permission.objects.get(content_type__app_label="chat", codename="view_messageedit"))


def revoke(apps, schema_editor):
    moderators = apps.get_model("auth", "Group").objects.filter(name="Moderators").first()
    if moderators is not None:
        moderators.permissions.remove(*apps.get_model("auth", "Permission").objects.filter(codename="view_messageedit"))


class Migration(migrations.Migration):
    dependencies = [("moderation", "0003_moderators_see_media_and_calls"), ("chat", "0008_message_edit_recall_hide")]

    operations = [migrations.RunPython(grant, revoke)]
