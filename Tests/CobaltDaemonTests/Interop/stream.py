"""Streams events to the ingest socket with pyzmq, pipelined, and reports every outcome.

Usage: python3 stream.py INGEST COUNT RATE
Sends COUNT events at about RATE per second (window 64), waits for every reply, prints a JSON summary:
{"sent": N, "statuses": {"accepted": N, ...}, "codes": {...}, "unanswered": N}.
"""
import json
import signal
import sys
import time

import zmq

# A whole run takes seconds; if the test process that started this dies, do not wait on its daemon forever.
signal.alarm(600)

ingest, count, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.connect(ingest)


def event(i):
    return json.dumps({
        "schema": "cobalt.event.v1", "id": f"load-{i}", "patient": f"lp-{i % 97}", "clinic": f"clinic-{i % 3}",
        "time": f"2026-11-20T{9 + (i // 3600) % 10:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "pregnancy": {"status": "pregnant", "gestation_weeks": 20},
        "observations": [{"code": "b12.active", "value": 18 if (i // 97) % 2 == 0 else 90, "unit": "pmol/L"}],
    }).encode()


pending = {}
statuses = {}
codes = {}
next_index = 0
start = time.time()
deadline = start + 120
while (next_index < count or pending) and time.time() < deadline:
    while next_index < count and len(pending) < 64 and next_index <= (time.time() - start) * rate:
        sock.send(event(next_index))
        pending[f"load-{next_index}"] = time.time()
        next_index += 1
    if sock.poll(5):
        reply = json.loads(sock.recv_multipart()[-1])
        if reply.get("id") in pending:
            del pending[reply["id"]]
            statuses[reply["status"]] = statuses.get(reply["status"], 0) + 1
            codes[str(reply["code"])] = codes.get(str(reply["code"]), 0) + 1
print(json.dumps({"sent": next_index, "statuses": statuses, "codes": codes, "unanswered": len(pending),
                  "seconds": round(time.time() - start, 2)}))
ctx.destroy(linger=0)
