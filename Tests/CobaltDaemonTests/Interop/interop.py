"""Interoperability check with an independent ZeroMQ implementation (pyzmq, its own libzmq).

Usage: python3 interop.py INGEST ALERTS REPLAY CONTROL
Exits 0 when every check passes; prints what failed otherwise.
"""
import json
import signal
import sys
import time

import zmq

# A whole run takes seconds; if the test process that started this dies, do not wait on its daemon forever.
signal.alarm(600)

ingest, alerts, replay, control = sys.argv[1:5]
ctx = zmq.Context()
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def event(event_id, value=18.0, patient="py-1"):
    return json.dumps({
        "schema": "cobalt.event.v1", "id": event_id, "patient": patient, "clinic": "interop",
        "time": "2026-11-20T09:00:00Z", "pregnancy": {"status": "pregnant", "gestation_weeks": 20},
        "diet": "vegan", "observations": [{"code": "b12.active", "value": value, "unit": "pmol/L"}],
    }).encode()


def dealer_request(socket, payload, timeout=60000):
    socket.send(payload)
    if not socket.poll(timeout):
        return None
    return json.loads(socket.recv_multipart()[-1])


# Subscribe first: PUB/SUB is lossy for slow joiners. The subscription is in place once the clinic's heartbeat
# comes (every 200 ms to each subscribed clinic): waited for, where a fixed 0.5 s could be too short on a busy
# machine and the first live alert was missed.
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"clinic/interop/")
sub.connect(alerts)
deadline = time.time() + 60
subscribed = False
while time.time() < deadline and not subscribed:
    if sub.poll(200):
        subscribed = sub.recv_multipart()[0].endswith(b"/heartbeat")
check(subscribed, "no heartbeat for the subscribed clinic")

sender = ctx.socket(zmq.DEALER)
sender.setsockopt(zmq.IMMEDIATE, 1)
sender.connect(ingest)
reply = dealer_request(sender, event("py-1"))
check(reply is not None and reply["status"] == "accepted" and reply["id"] == "py-1", f"accept: {reply}")
reply = dealer_request(sender, event("py-1"))
check(reply is not None and reply["status"] == "duplicate", f"duplicate: {reply}")
reply = dealer_request(sender, event("py-1", value=19.0))
check(reply is not None and reply["code"] == 409, f"conflict: {reply}")
reply = dealer_request(sender, b'{"id": "py-bad", "patient": "x"}')
check(reply is not None and reply["code"] == 400 and {e["path"] for e in reply["errors"]} == {"clinic", "time"}, f"invalid: {reply}")
reply = dealer_request(sender, b"\xff\xfe not json")
check(reply is not None and reply["code"] == 400, f"malformed: {reply}")

# A REQ client: its empty delimiter frame must be handled.
req = ctx.socket(zmq.REQ)
req.connect(ingest)
req.send(event("py-2", patient="py-2"))
check(req.poll(60000) and json.loads(req.recv())["status"] == "accepted", "REQ client was not acknowledged")

# Live alerts for this clinic, with topic, seq and epoch.
received = []
deadline = time.time() + 60
while time.time() < deadline and len(received) < 2:
    if sub.poll(200):
        topic, body = sub.recv_multipart()
        if topic.endswith(b"/alert"):
            received.append(json.loads(body))
check(len(received) >= 2, f"live alerts: got {len(received)}")
check(all(a["clinic"] == "interop" and a["status"] == "firing" and "epoch" in a for a in received), "live alert fields")
check([a["seq"] for a in received] == list(range(1, len(received) + 1)), f"live seqs: {[a['seq'] for a in received]}")

# Replay from a REQ socket, paged.
rep = ctx.socket(zmq.REQ)
rep.connect(replay)
rep.send(json.dumps({"clinic": "interop", "after": 0, "limit": 1}).encode())
page = json.loads(rep.recv()) if rep.poll(60000) else None
check(page is not None and page["status"] == "ok" and len(page["alerts"]) == 1 and page["more"] is True, f"replay page: {page}")
check(page is not None and received and page.get("alerts") and page["alerts"][0]["seq"] == 1 and page["epoch"] == received[0]["epoch"], "replay matches live")

# Heartbeats carry the last seq.
deadline = time.time() + 60
heartbeat = None
while time.time() < deadline and heartbeat is None:
    if sub.poll(200):
        topic, body = sub.recv_multipart()
        if topic.endswith(b"/heartbeat"):
            heartbeat = json.loads(body)
check(heartbeat is not None and heartbeat["last"] >= len(received), f"heartbeat: {heartbeat}")

status = ctx.socket(zmq.DEALER)
status.connect(control)
reply = dealer_request(status, b'{"command": "status"}')
check(reply is not None and reply["status"] == "ok" and reply["ruleset"]["hash"].startswith("sha256:"), f"status: {reply}")

ctx.destroy(linger=0)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("interop: all checks passed")
