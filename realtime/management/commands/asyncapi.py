"""Writes docs/asyncapi.yaml, the WebSocket protocol as AsyncAPI 3 (imserver/asyncapi.py), or
with --check fails when the committed file differs from what the registry generates."""

import json
from pathlib import Path

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imserver.asyncapi import asyncapi_document

DOCUMENT = Path(settings.BASE_DIR) / "docs" / "asyncapi.yaml"


def asyncapi_yaml() -> str:
    # Through JSON first: help texts may be lazy translation strings.
    document = json.loads(json.dumps(asyncapi_document(), default=str))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


class Command(BaseCommand):
    help = "Writes docs/asyncapi.yaml from the protocol registry (--check: fail if it is out of date)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Compare instead of writing.")

    def handle(self, *args, check=False, **options):
        generated = asyncapi_yaml()
        if check:
            if not DOCUMENT.exists() or DOCUMENT.read_text() != generated:
                raise CommandError(f"{DOCUMENT} is out of date: run `python manage.py asyncapi`")
            self.stdout.write(f"{DOCUMENT} is up to date")
            return
        DOCUMENT.write_text(generated)
        self.stdout.write(f"Wrote {DOCUMENT}")
