"""Garbage-collector settings for server processes.

Python's cyclic collector walks every tracked object in its oldest generation; a process holding
thousands of sockets has hundreds of thousands, and each full collection stalls delivery
(bench/delivery.py measures it). Objects that live as long as the process (modules, settings, URL
patterns) are frozen out of collection once loaded, and collections run ten times less often;
reference counting still frees almost everything at once, so memory barely moves.
"""

import gc


def tune():
    gc.freeze()
    gc.set_threshold(7_000, 20, 100)
