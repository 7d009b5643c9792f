"""Moderators also see a message's edit history on its page (docs/moderation.md)."""

from django.db import migrations

from moderation.migrations._moderator_permissions import grant_to_moderators


class Migration(migrations.Migration):
    dependencies = [("moderation", "0003_moderators_see_media_and_calls"), ("chat", "0008_message_edit_recall_hide")]

    operations = [grant_to_moderators("chat", "view_messageedit")]
