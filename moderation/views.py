from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from imserver.api import validated
from moderation import services
from moderation.serializers import ReportIn, ReportOut, report_data


class ReportViewSet(viewsets.ViewSet):
    """Users report what they can see to the moderators (contract 10)."""

    throttle_scope = "reports"

    @extend_schema(
        request=ReportIn,
        responses={
            201: ReportOut,
            200: OpenApiResponse(ReportOut, description="You already reported it and the report is still open."),
        },
    )
    def create(self, request):
        data = validated(ReportIn, request.data)
        report, created = services.report_create(reporter=request.user, **data)
        return Response(report_data(report), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
