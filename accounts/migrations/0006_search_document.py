"""The tokens users/search finds a user by (imserver/namesearch.py), made for the existing rows; a GIN
index on PostgreSQL."""

from django.db import migrations

import imserver.namesearch


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_password_reset_requester")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="search_document",
            field=imserver.namesearch.NameSearchField(sources=("username", "nickname")),
        ),
        imserver.namesearch.index_build("accounts", "User"),
    ]
