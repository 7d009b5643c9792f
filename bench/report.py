"""The load tools' figures: percentiles, delivery latency and loss, and the report every tool prints."""

import json
import time

from bench.harness import RESULTS


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def report(name, figures, command):
    """Prints the figures and the command that reproduces them; appends them to results.jsonl."""
    print(f"\n== {name}")
    for key, value in figures.items():
        print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"  reproduce: {command}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "results.jsonl", "a") as out:
        out.write(json.dumps({"name": name, "figures": figures, "command": command, "at": time.time()}) + "\n")


def delivery_figures(groups, seconds):
    """Send-to-receive latency per delivery and to each message's last recipient; loss,
    duplicates and reordering counted exactly against the acknowledged messages. `groups` is
    [(sent {message id: send time}, the receivers that must each get all of them)]."""
    latencies, last_recipient = [], []
    lost = reordered = 0
    for sent, receivers in groups:
        for receiver in receivers:
            got = [m for m in receiver.order if m in sent]
            lost += len(sent) - len(got)
            reordered += sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)
        for message_id, sent_at in sent.items():
            arrivals = [r.arrivals[message_id] - sent_at for r in receivers if message_id in r.arrivals]
            latencies.extend(arrivals)
            if len(arrivals) == len(receivers):
                last_recipient.append(max(arrivals))
    latencies.sort()
    last_recipient.sort()
    return {
        "deliveries/s": len(latencies) / seconds,
        "delivery p50 ms": percentile(latencies, 0.5) * 1000,
        "delivery p99 ms": percentile(latencies, 0.99) * 1000,
        "delivery max ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "last recipient p99 ms": percentile(last_recipient, 0.99) * 1000,
        "lost": lost,
        "duplicates": sum(r.duplicates for _, receivers in groups for r in receivers),
        "reordered": reordered,
        "sockets closed by the server": sum(r.closed is not None for _, receivers in groups for r in receivers),
    }
