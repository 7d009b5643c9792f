"""Instructions one request costs in-process, counted by valgrind's callgrind. CPU time on a shared
machine drifts by tens of percent within minutes; instruction counts do not, so two commits
compare on any day, one after the other. The request goes through Django's WSGI handler as in
bench/request_cpu.py (every middleware, DRF, the token's user, the pool's checkout; no sockets).

The script runs itself twice under callgrind, side by side, with the same seed and warm-up, once
making no request and once making --count, and prints the difference per request. About 4 minutes for the
send; the history page seeds 5,000 messages first (about 10 minutes). Needs valgrind.

    .venv/bin/python bench/instructions.py --request send
    .venv/bin/python bench/instructions.py --request history --count 100
"""

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import report

WARM_UP = 30


def requests(kind):
    """-> a zero-argument callable making one request of `kind` (seeded, through the handler)."""
    from django.core.wsgi import get_wsgi_application

    from bench import reads
    from bench.request_cpu import call, seed_group

    application = get_wsgi_application()
    if kind == "send":
        token, group_id = seed_group()
        sent = iter(range(10**9))
        return lambda: call(
            application, "POST", f"/v1/conversations/c{group_id}/messages", token,
            {"type": "text", "content": "hello", "temp_id": f"i{next(sent)}-{time.time_ns()}"},
        )  # fmt: skip
    token, deep_id, anchors = reads.seed()
    pick = random.Random(1)
    return lambda: call(
        application, "GET", f"/v1/conversations/c{deep_id}/messages?limit=50&before=m{pick.choice(anchors)}", token
    )


def run(kind, count):
    """The measured process: seed, warm up, then `count` requests."""
    from bench.seed import create_database, django_setup

    create_database()
    django_setup()
    request = requests(kind)
    for _ in range(WARM_UP + count):
        request()


def counted(kind, counts, directory):
    """-> the instructions of each measured process (one per count), run side by side."""
    outs = [Path(directory) / f"callgrind.{count}" for count in counts]
    logs = [out.with_suffix(".log").open("w") for out in outs]
    processes = [
        subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--run",
                str(count),
                "--request",
                kind,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for out, log, count in zip(outs, logs, counts, strict=True)
    ]
    for process, out, log in zip(processes, outs, logs, strict=True):
        process.wait()
        log.close()
        if process.returncode:
            sys.exit(f"bench/instructions.py: a measured process failed: {out.with_suffix('.log').read_text()[-2000:]}")
    return [int(re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE).group(1)) for out in outs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request", choices=["send", "history"], default="send")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the measured process itself
    args = parser.parse_args(argv)
    if args.run is not None:
        return run(args.request, args.run)
    if not shutil.which("valgrind"):
        sys.exit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as directory:
        baseline, measured = counted(args.request, [0, args.count], directory)
    name = {"send": "REST send, group of 20", "history": "history page of 50 (random depth)"}[args.request]
    report(
        f"instructions: {name}",
        {"instructions/request": (measured - baseline) // args.count, "requests": args.count},
        f".venv/bin/python bench/instructions.py --request {args.request} --count {args.count}",
    )


if __name__ == "__main__":
    main()
