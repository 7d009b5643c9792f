from django.db import migrations, models
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce


def fill(apps, schema_editor):
    """The existing hides and reactions, counted into the new columns."""
    Membership = apps.get_model("chat", "Membership")
    Message = apps.get_model("chat", "Message")
    MessageHidden = apps.get_model("chat", "MessageHidden")
    Reaction = apps.get_model("chat", "Reaction")
    hidden = MessageHidden.objects.filter(user=OuterRef("user"), message__conversation=OuterRef("conversation"))
    Membership.objects.filter(Exists(hidden)).update(hides_messages=True)
    counts = Reaction.objects.filter(message=OuterRef("pk")).order_by().values("message").annotate(n=Count("pk"))
    Message.objects.filter(Exists(Reaction.objects.filter(message=OuterRef("pk")))).update(
        reaction_count=Coalesce(Subquery(counts.values("n")), 0)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0010_membership_delivered_pointer"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="hides_messages",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="message",
            name="reaction_count",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
