"""The whole suite, short: every bench tool for make run's daphne and for the production-style
deployment (REST by gunicorn, sockets by uvicorn), plus the fan-out designs and the side-by-side
run beside the floor and Synapse (bench/peers.py, issue 18); then a Markdown table
of issue 7's workloads (target, measured figure, met or not, the command that reproduces it),
written to bench/results/latest.md and printed. Each tool's output goes to
bench/results/run_all-<tool>-<deployment>.log.

    make bench                                   # this, with the venv made like make test's
    .venv/bin/python bench/run_all.py --deployments daphne,production
    .venv/bin/python bench/run_all.py --skip-peers   # without the side-by-side run (bench/peers.py)
    .venv/bin/python bench/run_all.py --full     # issue 7's sizes: 10k idle sockets, 10 s runs, 60 s soak,
                                                 # and message search over 1M messages (bench/search.py)

PostgreSQL and Redis are those of bench/harness.py (DATABASE_URL and REDIS_URL override them); the
bench database is created if missing.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, environment, redis_client
from bench.processes import ROOT
from bench.seed import create_database

SIZES = {
    # short: a few minutes in all
    "short": {"seconds": 3, "reads": 2, "idle": 2000, "storm": 2000, "soak": 20, "rates": "5000,10000,20000,40000"},
    "full": {
        "seconds": 10,
        "reads": 5,
        "idle": 10000,
        "storm": 2000,
        "soak": 60,
        "rates": "2000,5000,10000,20000,40000",
    },
}
TOOL_TIMEOUT = 600  # seconds; a tool still running then is stopped and its rows say so


def tools(deployment, size):
    """(tool key, arguments) run for one deployment."""
    s = SIZES[size]
    d = ["--deployment", deployment]
    return [
        ("send", ["send.py", *d, "--clients", "16", "--seconds", str(s["seconds"])]),
        ("reads", ["reads.py", *d, "--clients", "16", "--seconds", str(s["reads"])]),
        ("delivery-10", ["delivery.py", *d, "--group", "10", "--rate", "1000", "--seconds", str(s["seconds"])]),
        ("delivery-100", ["delivery.py", *d, "--group", "100", "--rate", "5000", "--seconds", str(s["seconds"])]),
        ("delivery-1000", ["delivery.py", *d, "--group", "1000", "--rate", "10000", "--seconds", str(s["seconds"])]),
        ("sockets", ["sockets.py", *d, "--idle", str(s["idle"]), "--storm", str(s["storm"])]),
        ("scaleout", ["scaleout.py", *d, "--clients", "16", "--group", "100", "--rate", "2000", "--seconds", "3"]),
        ("soak", ["soak.py", *d, "--seconds", str(s["soak"])]),
    ]


def run_tool(key, deployment, arguments, timeout=TOOL_TIMEOUT):
    """Runs one tool; -> (records it reported, a note when it failed)."""
    results = RESULTS / "results.jsonl"
    offset = results.stat().st_size if results.exists() else 0
    log = RESULTS / f"run_all-{key}-{deployment}.log"
    started = time.monotonic()
    print(f"-- {key} ({deployment}): {' '.join(arguments)}", flush=True)
    with open(log, "wb") as out:
        try:
            code = subprocess.run(
                [sys.executable, str(ROOT / "bench" / arguments[0]), *arguments[1:]],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env=environment(),
            ).returncode
            note = None if code in (0, 1) else f"exited with {code}, see {log.relative_to(ROOT)}"
        except subprocess.TimeoutExpired:
            note = f"timed out after {timeout} s, see {log.relative_to(ROOT)}"
    records = []
    if results.exists():
        with open(results) as lines:
            lines.seek(offset)
            records = [json.loads(line) for line in lines if line.strip()]
    print(f"   {time.monotonic() - started:.0f} s{'; ' + note if note else ''}", flush=True)
    return records, note


def find(records, *parts):
    """The first record whose name starts with parts[0] and contains the other parts."""
    return next((r for r in records if r["name"].startswith(parts[0]) and all(p in r["name"] for p in parts)), None)


# --- The table -----------------------------------------------------------------------------------
# Each row: (workload, target, tool key, record name prefix[|part it contains], figures -> (measured, met)).


def send_row(f):
    ok = f["acknowledged sends/s"] >= 600 and f["ack p99 ms"] <= 50 and not f["errors"] and f["stored == acknowledged"]
    return f"{f['acknowledged sends/s']:.0f} msg/s, ack p99 {f['ack p99 ms']:.0f} ms, {f['errors']} errors", ok


def history_row(f):
    return f"{f['requests/s']:.0f} req/s, p99 {f['p99 ms']:.0f} ms", f["requests/s"] >= 500 and f["p99 ms"] <= 60


def delivery_row(p50=None, p99=None, last_p99=None, min_rate=None):
    def row(f):
        gaps = f["gap fills"]
        text = (
            f"{f['deliveries/s']:.0f} deliveries/s, p50 {f['delivery p50 ms']:.1f} ms, "
            f"p99 {f['delivery p99 ms']:.1f} ms, "
            f"last recipient p99 {f['last recipient p99 ms']:.0f} ms, lost {f['lost']}, gap fills {gaps}"
        )
        ok = f["lost"] == 0 and not f["duplicates"] and not f["reordered"] and not f["send errors"]
        ok &= p50 is None or f["delivery p50 ms"] <= p50
        ok &= p99 is None or f["delivery p99 ms"] <= p99
        ok &= last_p99 is None or f["last recipient p99 ms"] <= last_p99
        ok &= min_rate is None or (f["deliveries/s"] >= 0.95 * min_rate and gaps == 0)
        return text, ok

    return row


def zero_loss_row(f):
    # Issue 7: "zero loss means the durable resume never has to fill a gap under normal load".
    text, ok = delivery_row(p99=50)(f)
    return text, ok and f["gap fills"] == 0


def idle_row(f):
    text = f"{f['connected']} held, {f['KB per socket']:.1f} KB each, {f['failures']} failures"
    ok = f["KB per socket"] <= 45 and not f["failures"]
    if ok and f["connected"] < 10000:
        return text, "not judged: fewer than 10k held (run --full)"
    return text, ok and f["connected"] >= 10000


def storm_row(f):
    text = f"{f['connected']} live in {f['seconds until all live']:.1f} s, {f['failures']} failures"
    return text, f["seconds until all live"] <= 5 and not f["failures"]


def across_row(f):
    text = f"p50 {f['delivery p50 ms']:.1f} ms, p99 {f['delivery p99 ms']:.1f} ms, lost {f['lost']}, "
    text += f"gap fills {f['gap fills']}"
    return text, f["lost"] == 0 and f["gap fills"] == 0 and not f["send errors"] and not f["duplicates"]


def scale_row(f):
    return f"two nodes {f['acknowledged sends/s']:.0f} msg/s = {f['sends/s two nodes / one node']:.2f} x one node", None


def soak_row(f):
    growth = (f["server RSS end MB"] - f["server RSS middle MB"]) / f["server RSS middle MB"]
    text = (
        f"{f['clients with exactly the committed messages']} clients exact, {f['error responses']} errors, "
        f"RSS {f['server RSS start MB']:.0f} -> {f['server RSS middle MB']:.0f} -> {f['server RSS end MB']:.0f} MB, "
        f"open fds after - before {f['fds after - before']:+d}, gap fills {f['gap fills (server logs)']}"
    )
    exact = f["missing"] == 0 and f["duplicates"] == 0 and f["out of order"] == 0 and f["unexpected"] == 0
    return text, exact and not f["error responses"] and growth <= 0.02


ROWS = [
    ("REST send, 16 concurrent clients", ">= 600 messages/s, ack p99 <= 50 ms", "send", "send:", send_row),
    ("history page of 50", ">= 500 requests/s, p99 <= 60 ms", "reads", "history page of 50", history_row),
    ("conversation list", "1-2 queries at any page size, <= 15 ms for 100 rows", "reads", None, None),
    (
        "delivery, group of 10, 1k deliveries/s",
        "p50 <= 5 ms, p99 <= 20 ms",
        "delivery-10",
        "delivery:",
        delivery_row(p50=5, p99=20),
    ),
    ("delivery, group of 100, 5k deliveries/s", "p99 <= 50 ms, zero loss", "delivery-100", "delivery:", zero_loss_row),
    (
        "delivery, group of 1000 (10k deliveries/s)",
        "last recipient p99 <= 150 ms",
        "delivery-1000",
        "delivery:",
        delivery_row(last_p99=150),
    ),
    (
        "fan-out ceiling, end to end (group of 1000)",
        ">= 10k deliveries/s with zero loss",
        "delivery-1000",
        "delivery:",
        delivery_row(min_rate=10000),
    ),
    ("idle sockets", "10k in one process at <= 45 KB each", "sockets", "idle sockets", idle_row),
    ("connect storm", "2k sockets in <= 5 s, zero failures", "sockets", "connect storm", storm_row),
    (
        "scale-out: delivery A to B (group of 100, 2k/s)",
        "zero loss across processes",
        "scaleout",
        "scale-out delivery A to B",
        across_row,
    ),
    (
        "scale-out: delivery B to A (group of 100, 2k/s)",
        "zero loss across processes",
        "scaleout",
        "scale-out delivery B to A",
        across_row,
    ),
    ("scale-out: send throughput, 16 senders", "(no target)", "scaleout", "scale-out throughput|two nodes", scale_row),
    (
        "soak with reconnect churn, two nodes",
        "memory and fds flat (RSS middle to end <= 2%), 0 errors, every client exact",
        "soak",
        "soak:",
        soak_row,
    ),
]


def conversation_list_row(records):
    rows = {n: find(records, f"conversation list, {n} rows") for n in (20, 50, 100)}
    if not all(rows.values()):
        return None
    queries = [rows[n]["figures"]["queries/request"] for n in (20, 50, 100)]
    alone = rows[100]["figures"]["one client p50 ms"]
    loaded = rows[100]["figures"]["p99 ms"]
    text = f"{'/'.join(map(str, queries))} queries at 20/50/100 rows; 100 rows: {alone:.1f} ms alone (p50), "
    text += f"p99 {loaded:.0f} ms under 16 clients"
    return text, max(queries) <= 2 and alone <= 15, rows[100]["command"]


def table_rows(deployment, outcomes):
    rows = []
    for workload, target, key, prefix, judge in ROWS:
        records, note = outcomes.get(key, ([], "not run"))
        if prefix is None:
            got = conversation_list_row(records)
        else:
            record = find(records, *prefix.split("|"))
            got = (*judge(record["figures"]), record["command"]) if record else None
        if got is None:
            rows.append((workload, target, deployment, note or "no figures", False, "-"))
        else:
            measured, met, command = got
            rows.append((workload, target, deployment, measured, met, command))
    return rows


def fanout_rows(records, note):
    ceiling = find(records, "fan-out ceiling")
    if ceiling is None:
        return [
            ("fan-out designs (bus alone)", ">= 10k deliveries/s with zero loss", "-", note or "no figures", False, "-")
        ]
    rows = []
    for key, value in ceiling["figures"].items():
        design = key.removesuffix(" deliveries/s")
        rows.append(
            (
                f"fan-out design, bus alone: {design}",
                ">= 10k deliveries/s with zero loss (p99 <= 50 ms)",
                "-",
                f"ceiling {value:.0f} deliveries/s (100 receivers in 2 processes)",
                value >= 10000,
                ceiling["command"],
            )
        )
    return rows


def push_rows(records, note):
    """Issue 13's target, from bench/push.py."""
    record = find(records, "push: group of 500")
    if record is None:
        return [
            ("push, 500-member group, 250 offline devices", "last push <= 2 s", "-", note or "no figures", False, "-")
        ]
    f = record["figures"]
    last = f["ack to last push, worst message ms"]
    return [
        (
            "push, 500-member group, 250 offline devices, one worker",
            "last push <= 2 s after the send; send latency unchanged",
            "-",
            f"{f['pushes/s']:.0f} pushes/s, last push {last:.0f} ms (p99 {f['ack to push p99 ms']:.0f} ms); send p50 "
            f"{f['send p50 ms, pushes on']:.1f} ms vs {f['send p50 ms, no provider']:.1f} ms with no provider",
            last <= 2000 and f["pushes received"] == f["pushes expected"],
            record["command"],
        )
    ]


SEARCH_TIMEOUT = 1800  # seconds: the first run generates its 1,000,000 messages


def search_rows(records, note):
    """Issue 16's two targets, from bench/search.py."""
    latency = find(records, "search latency: chat.search")
    sends = find(records, "sends with and without the search index")
    if latency is None or sends is None:
        return [("message search, 1M messages", "p95 <= 100 ms", "-", note or "no figures", False, "-")]
    p95 = {key.removesuffix(" p95 ms"): value for key, value in latency["figures"].items() if key.endswith("p95 ms")}
    slowdown = sends["figures"]["slowdown %"]
    return [
        (
            "message search, 1M messages, user in 200 conversations",
            "p95 <= 100 ms: 1-, 2-, 4-char Chinese, an English word",
            "-",
            ", ".join(f"{kind} {value:.0f} ms" for kind, value in p95.items()),
            max(p95.values()) <= 100,
            latency["command"],
        ),
        (
            "sends with the search index written",
            "within 10% of without",
            "-",
            f"{sends['figures']['sends/s with index']:.0f} vs {sends['figures']['sends/s without index']:.0f} "
            f"sends/s ({slowdown:+.1f}% slower)",
            slowdown <= 10,
            sends["command"],
        ),
    ]


# Issue 18's targets against the floor, from bench/peers.py: (min ratio, max p99 ms, max server CPU
# ms/msg, max PostgreSQL CPU ms/msg); None where the issue sets none.
PEER_TARGETS = {
    "floor": (None, None, None, None),
    "daphne": (0.25, 100, None, None),
    "production": (0.5, 50, 1.5, 1.0),
    "synapse": (None, None, None, None),
}


def peer_rows(records, note):
    """The side-by-side run: every server's throughput as a ratio to the floor's, in one run."""
    rows = []
    for name, (ratio, p99, cpu, postgres) in PEER_TARGETS.items():
        record = find(records, f"side by side: {name}")
        if record is None:
            if name in ("floor", "daphne", "production"):
                rows.append((f"side by side: {name}", "-", "-", note or "no figures", False, "-"))
            continue
        f = record["figures"]
        measured = (
            f"{f['msgs/s']:.0f} msgs/s = {f['x floor throughput']:.2f} x floor, "
            f"delivery p99 {f['delivery p99 ms']:.0f} ms, "
            f"CPU {f['server CPU ms/msg']:.2f} ms/msg + PostgreSQL {f['PostgreSQL CPU ms/msg']:.2f}, lost {f['lost']}"
        )
        wanted = [f">= {ratio} x floor" if ratio else None, f"p99 <= {p99} ms" if p99 else None]
        wanted += [f"CPU <= {cpu} ms/msg" if cpu else None, f"PostgreSQL <= {postgres} ms/msg" if postgres else None]
        target = ", ".join(w for w in wanted if w) or "(reference)"
        met = None
        if ratio:
            met = (
                f["x floor throughput"] >= ratio
                and f["delivery p99 ms"] <= p99
                and not f["lost"]
                and not f["duplicates"]
            )
            met &= cpu is None or f["server CPU ms/msg"] <= cpu
            met &= postgres is None or f["PostgreSQL CPU ms/msg"] <= postgres
        rows.append((f"side by side (chatload): {name}", target, "-", measured, met, record["command"]))
    return rows


def markdown(rows, header):
    lines = [
        *header,
        "",
        "| workload | target (issue 7) | deployment | measured | met | reproduce |",
        "|---|---|---|---|---|---|",
    ]
    for workload, target, deployment, measured, met, command in rows:
        mark = "-" if met is None else met if isinstance(met, str) else ("yes" if met else "**no**")
        lines.append(f"| {workload} | {target} | {deployment} | {measured} | {mark} | `{command}` |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", default="daphne,production")
    parser.add_argument("--full", action="store_true", help="issue 7's sizes (longer)")
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args(argv)
    size = "full" if args.full else "short"

    RESULTS.mkdir(parents=True, exist_ok=True)
    create_database()
    redis_client().ping()
    started, load_before = time.monotonic(), os.getloadavg()
    rows = []
    if not args.skip_fanout:
        records, note = run_tool(
            "fanout",
            "-",
            ["fanout_layers.py", "--rates", SIZES[size]["rates"], "--seconds", "2" if size == "short" else "3"],
        )
        rows.extend(fanout_rows(records, note))
    if not args.skip_peers:
        records, note = run_tool("peers", "-", ["peers.py"])
        rows.extend(peer_rows(records, note))
    records, note = run_tool("push", "-", ["push.py", "--messages", "5" if size == "short" else "20"])
    rows.extend(push_rows(records, note))
    if size == "full":
        records, note = run_tool("search", "-", ["search.py"], timeout=SEARCH_TIMEOUT)
        rows.extend(search_rows(records, note))
    for deployment in args.deployments.split(","):
        outcomes = {}
        for key, arguments in tools(deployment, size):
            outcomes[key] = run_tool(key, deployment, arguments)
        rows.extend(table_rows(deployment, outcomes))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    header = [
        f"# Benchmark results ({size} run)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, commit {commit.stdout.strip() or '?'}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load generator, servers, PostgreSQL and Redis on the same machine. "
        f"Load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (anything else running makes the "
        f"figures noisy); {time.monotonic() - started:.0f} s in all.",
    ]
    if size == "short":
        header.append(
            "Short run: 3 s per load step, 2,000 idle sockets instead of 10,000 (the idle row is judged only with "
            "10,000: `make bench BENCH_ARGS=--full`), a 20 s soak."
        )
    text = markdown(rows, header)
    (RESULTS / "latest.md").write_text(text)
    print("\n" + text)
    print(f"written to {(RESULTS / 'latest.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
