"""Moderators see users' devices and may sign them out (audited as device_revoke; docs/moderation.md)."""

from django.db import migrations, models

from moderation.migrations._moderator_permissions import grant_to_moderators


class Migration(migrations.Migration):

    dependencies = [
        ('moderation', '0004_moderators_see_edit_history'),
        ('accounts', '0003_device'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditentry',
            name='action',
            field=models.CharField(choices=[('user_ban', 'ban user'), ('user_unban', 'unban user'), ('user_delete', 'delete user'), ('message_remove', 'remove message'), ('report_resolve', 'resolve report'), ('report_dismiss', 'dismiss report'), ('moderator_grant', 'make moderator'), ('moderator_revoke', 'remove moderator'), ('device_revoke', 'sign out device')], max_length=20),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='target_type',
            field=models.CharField(choices=[('message', 'Message'), ('user', 'User'), ('group', 'Group'), ('report', 'Report'), ('device', 'Device')], max_length=8),
        ),
        grant_to_moderators("accounts", "view_device"),
    ]
