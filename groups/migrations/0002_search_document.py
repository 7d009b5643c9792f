"""The tokens the admin's group search finds a group by (imserver/namesearch.py), made for the existing rows; a GIN
index on PostgreSQL."""

from django.db import migrations

import imserver.namesearch


class Migration(migrations.Migration):
    dependencies = [("groups", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="group",
            name="search_document",
            field=imserver.namesearch.NameSearchField(sources=("name",)),
        ),
        imserver.namesearch.index_build("groups", "Group"),
    ]
