"""Periodic jobs of calls, registered by CallsConfig.ready() and run in every server process."""

from channels.db import database_sync_to_async

from calls.services import calls_expire
from realtime.background import periodic


@periodic(1)
async def expire_ringing_calls():
    # Every process runs this; calls_expire claims each call for exactly one of them.
    await database_sync_to_async(calls_expire)()
