"""Chat's periodic job: the held-back "delivered" receipts whose window ended (chat.receipts)."""

from chat.services import delivered_flush
from realtime.background import periodic
from realtime.db import in_db_thread

FLUSH_SECONDS = 0.5


@periodic(FLUSH_SECONDS)
async def delivered_receipts_flush():
    await in_db_thread(delivered_flush)()
