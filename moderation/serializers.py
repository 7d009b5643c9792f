from rest_framework import serializers

from imserver.api import StrictCharField, StrictSerializer
from moderation.models import Report, TargetType


class ReportIn(StrictSerializer):
    target_type = serializers.ChoiceField(choices=TargetType.choices)
    target_id = StrictCharField(max_length=32, help_text='"m12" for a message, "12" for a user, "g3" for a group.')
    reason = serializers.CharField(max_length=200, help_text="Why, in a few words (e.g. spam, harassment).")
    details = serializers.CharField(max_length=2000, required=False, allow_blank=True)


def report_data(report):
    return {"report_id": f"r{report.pk}", "status": report.status, "created_at": report.created_at}


class ReportOut(serializers.Serializer):
    report_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Report.Status.choices)
    created_at = serializers.DateTimeField()
