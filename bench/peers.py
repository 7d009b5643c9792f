"""Side by side (issue 18): one driver, the peers' chatload.py, against the no-database floor
(peers' floor.py), imserver as `make run` serves it (daphne), imserver's production layout
(gunicorn for REST, uvicorn for sockets) and Matrix Synapse on PostgreSQL when its venv is present;
then a table with each server's ratio to the floor, every figure from this one run.

    .venv/bin/python bench/peers.py                      # the standard 20-member workload
    .venv/bin/python bench/peers.py --servers floor,daphne,production,synapse
    PEERS_DIR=/path/to/peers .venv/bin/python bench/peers.py

The peers' directory (chatload.py, floor.py, synapse/) is `PEERS_DIR`, else ../shared/peers beside
the checkout. Synapse runs only where its venv exists (`$PEERS_DIR/synapse/setup.sh` makes it).
Every server shares the 2 cores with the driver: compare ratios from one run, not figures across
days. PostgreSQL CPU is read from /proc for the whole run of a server (the machine is the bench's).
"""

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Deployment, postgres_cpu
from bench.processes import ROOT, free_port
from bench.report import report
from bench.seed import create_database, django_setup

STANDARD_WORKLOAD = "--users 20 --senders 5 --messages 200 --concurrency 10 --warmup 20"
DRIVER = Path("/tmp/peer-driver/bin/python")
SYNAPSE_VENV = Path("/tmp/peer-synapse/venv")
SYNAPSE_URL = "http://127.0.0.1:8008"


def peers_dir():
    for candidate in (os.environ.get("PEERS_DIR"), ROOT.parent / "shared" / "peers", Path("/work/shared/peers")):
        if candidate and (Path(candidate) / "chatload.py").exists():
            return Path(candidate)
    sys.exit("bench/peers.py: no peers directory with chatload.py (set PEERS_DIR)")


def chatload(peers, label, target, base_url, cpu_pids, workload, ws_url=None):
    """One chatload run; -> its JSON line as a dict, with PostgreSQL's CPU over the run added."""
    command = [str(DRIVER), str(peers / "chatload.py"), "--target", target, "--base-url", base_url, "--label", label]
    command += ["--ws-url", ws_url] if ws_url else []
    for pid in cpu_pids:
        command += ["--cpu-pid", str(pid)]
    command += shlex.split(workload)
    postgres_before = postgres_cpu()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    postgres_after = postgres_cpu()
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"chatload {label} printed no result (exit {finished.returncode}): {finished.stderr[-800:]}")
    result = json.loads(lines[-1])
    result["postgres_cpu_s"] = sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in postgres_after.items())
    return result


def wait_listening(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def run_floor(peers, workload):
    port = free_port()
    floor = subprocess.Popen(
        [str(DRIVER), str(peers / "floor.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port)
        return chatload(peers, "floor", "imserver", f"http://127.0.0.1:{port}", [floor.pid], workload)
    finally:
        floor.terminate()
        floor.wait()


def run_imserver(peers, deployment_name, workload):
    with Deployment(deployment_name) as deployment:
        return chatload(
            peers,
            f"imserver {deployment_name}",
            "imserver",
            f"http://127.0.0.1:{deployment.rest_port}",
            [server.pid for server in deployment.servers],
            workload,
            ws_url=f"ws://127.0.0.1:{deployment.ws_port}/ws",
        )


def run_synapse(peers, workload):
    subprocess.run(["bash", str(peers / "synapse" / "setup.sh"), "--db", "postgres", "--fresh"], check=True)
    try:
        pid = int(Path("/tmp/peer-synapse/pid").read_text())
        return chatload(peers, "synapse postgres", "synapse", SYNAPSE_URL, [pid], workload)
    finally:
        subprocess.run(["bash", str(peers / "synapse" / "stop.sh")], capture_output=True)


def figures(result, floor):
    sent = result["messages_sent"]
    throughput = result["send_throughput_msgs_per_s"]
    return {
        "msgs/s": throughput,
        "x floor throughput": throughput / floor["send_throughput_msgs_per_s"] if floor else float("nan"),
        "delivery p50 ms": result["delivery_latency_ms"]["p50"],
        "delivery p99 ms": result["delivery_latency_ms"]["p99"],
        "ack p99 ms": result["send_ack_ms"]["p99"],
        "server CPU ms/msg": result["cpu"]["server_cpu_ms_per_msg"],
        "PostgreSQL CPU ms/msg": result["postgres_cpu_s"] * 1000 / sent,
        "lost": result["lost"],
        "duplicates": result["duplicates"],
        "errors": result["errors"],
        "machine busy before %": result["cpu"]["background_busy_pct_before"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="floor,daphne,production,synapse")
    parser.add_argument("--workload", default=STANDARD_WORKLOAD, help="chatload's workload arguments")
    args = parser.parse_args(argv)
    peers = peers_dir()
    subprocess.run(["bash", str(peers / "setup_driver.sh")], check=True, stdout=subprocess.DEVNULL)
    create_database()
    django_setup()  # migrates the bench database

    runners = {
        "floor": lambda: run_floor(peers, args.workload),
        "daphne": lambda: run_imserver(peers, "daphne", args.workload),
        "production": lambda: run_imserver(peers, "production", args.workload),
        "synapse": lambda: run_synapse(peers, args.workload),
    }
    results, failed = {}, False
    for name in args.servers.split(","):
        if name == "synapse" and not SYNAPSE_VENV.exists():
            print(f"-- synapse: skipped, no venv at {SYNAPSE_VENV} (make it with {peers}/synapse/setup.sh)")
            continue
        print(f"-- {name}: chatload {args.workload}", flush=True)
        try:
            result = runners[name]()
        except (RuntimeError, subprocess.SubprocessError) as error:
            print(f"   failed: {error}", flush=True)
            failed = True
            continue
        if not result["messages_sent"]:
            print(f"   failed: nothing sent: {result['error_samples']}", flush=True)
            failed = True
            continue
        results[name] = result

    floor = results.get("floor")
    command = f".venv/bin/python bench/peers.py --servers {args.servers} --workload '{args.workload}'"
    for name, result in results.items():
        report(f"side by side: {name}", figures(result, floor), command)
        failed |= bool(result["lost"] or result["duplicates"] or result["errors"] or result["timed_out"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
