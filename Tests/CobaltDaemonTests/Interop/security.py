"""Checks CURVE authentication and per-clinic authorisation with pyzmq clients (an independent implementation).

Usage: python3 security.py KEYS_JSON   (endpoints and keys, written by the Swift test)
"""
import json
import signal
import sys
import time

import zmq

# A whole run takes seconds; if the test process that started this dies, do not wait on its daemon forever.
signal.alarm(600)

cfg = json.load(open(sys.argv[1]))
ctx = zmq.Context()
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def socket(kind, endpoint, key=None, server=None):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if key is not None:
        s.curve_publickey = key["public"].encode()
        s.curve_secretkey = key["secret"].encode()
        s.curve_serverkey = (server or cfg["server"]).encode()
    s.connect(endpoint)
    return s


def request(s, payload, timeout=60000):
    """One request and its answer, or None. Where an answer must come the wait is long (a busy machine's daemon
    can take seconds: 1.5 s was missed); where none may come, `unanswered` waits less."""
    s.send(payload)
    if not s.poll(timeout):
        return None
    return json.loads(s.recv_multipart()[-1])


def unanswered(s, payload):
    """A request that must get no answer: waiting longer would only make the check slower, never pass it wrongly."""
    return request(s, payload, timeout=1500) is None


def wait_for(sock, topic_suffix, seconds=60):
    """The first message on `sock` whose topic ends with `topic_suffix` within `seconds`, else None."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if sock.poll(200):
            topic, body = sock.recv_multipart()
            if topic.endswith(topic_suffix):
                return topic, json.loads(body)
    return None


def event(event_id, clinic, patient):
    return json.dumps({"schema": "cobalt.event.v1", "id": event_id, "patient": patient, "clinic": clinic,
                       "time": "2026-11-20T09:00:00Z", "pregnancy": {"status": "pregnant", "gestation_weeks": 20},
                       "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}]}).encode()


# Subscribers first (slow joiners): north may see north only; its requests for south or everything get nothing.
north = socket(zmq.SUB, cfg["alerts"], cfg["keys"]["subscriber_north"])
for topic in [b"clinic/north/", b"clinic/south/", b""]:
    north.setsockopt(zmq.SUBSCRIBE, topic)
intruder = socket(zmq.SUB, cfg["alerts"], cfg["keys"]["unknown"])
intruder.setsockopt(zmq.SUBSCRIBE, b"")
plain_sub = socket(zmq.SUB, cfg["alerts"])
plain_sub.setsockopt(zmq.SUBSCRIBE, b"")
# North's subscription is in place once its clinic's heartbeat comes (every 200 ms to subscribed clinics): waited
# for, where a fixed second could be too short for the handshake and the subscription on a busy machine.
check(wait_for(north, b"clinic/north/heartbeat") is not None, "north subscriber got no heartbeat")

sender = socket(zmq.DEALER, cfg["ingest"], cfg["keys"]["ingest_all"])
reply = request(sender, event("s-1", "north", "sp-1"))
check(reply is not None and reply["status"] == "accepted", f"allowed ingest key: {reply}")
reply = request(sender, event("s-2", "south", "sp-2"))
check(reply is not None and reply["status"] == "accepted", f"allowed ingest key, south: {reply}")

limited = socket(zmq.DEALER, cfg["ingest"], cfg["keys"]["ingest_north"])
reply = request(limited, event("s-3", "south", "sp-3"))
check(reply is not None and reply["code"] == 403, f"ingest key limited to north sending for south: {reply}")

# Ids are unique per sender (INTERFACES §1): the north engine's own "s-1", with other content, is its own event;
# each sender's resend is a duplicate, and other content under its own id again is a conflict.
reply = request(limited, event("s-1", "north", "sp-9"))
check(reply is not None and reply["status"] == "accepted", f"another sender's id s-1: {reply}")
reply = request(limited, event("s-1", "north", "sp-9"))
check(reply is not None and reply["status"] == "duplicate", f"resend of the north engine's s-1: {reply}")
reply = request(sender, event("s-1", "north", "sp-1"))
check(reply is not None and reply["status"] == "duplicate", f"resend of the first engine's s-1: {reply}")
reply = request(limited, event("s-1", "north", "sp-8"))
check(reply is not None and reply.get("code") == 409, f"other content under the north engine's s-1: {reply}")

check(unanswered(socket(zmq.DEALER, cfg["ingest"], cfg["keys"]["unknown"]), event("s-4", "north", "x")),
      "an unknown key got an answer")
check(unanswered(socket(zmq.DEALER, cfg["ingest"], cfg["keys"]["ingest_all"], server=cfg["wrong_server"]), event("s-5", "north", "x")),
      "a client with the wrong server key got an answer")
check(unanswered(socket(zmq.DEALER, cfg["ingest"]), event("s-6", "north", "x")), "plaintext got an answer")

check(unanswered(socket(zmq.DEALER, cfg["control"], cfg["keys"]["ingest_all"]), b'{"command": "status"}'),
      "an ingest key reached control")
status = request(socket(zmq.DEALER, cfg["control"], cfg["keys"]["operator"]), b'{"command": "status"}')
check(status is not None and status["status"] == "ok", f"operator status: {status}")

# Live: the north subscriber receives north alerts and never south's (alerts or heartbeats). Read until the three
# accepted events are evaluated (operator status) and a north alert came, then a second more: a fixed 4 s could end
# before a busy machine had evaluated them.
operator = socket(zmq.DEALER, cfg["control"], cfg["keys"]["operator"])
seen = set()
alerted = set()
evaluated_at = None
next_status = 0
deadline = time.time() + 60
while time.time() < deadline:
    if north.poll(100):
        topic, body = north.recv_multipart()
        clinic = json.loads(body).get("clinic")
        seen.add(clinic)
        if topic.endswith(b"/alert"):
            alerted.add(clinic)
    now = time.time()
    if evaluated_at is None and now >= next_status:
        counts = (request(operator, b'{"command": "status"}') or {}).get("counts", {})
        if counts.get("evaluated", 0) >= 3 and counts.get("unevaluated") == 0:
            evaluated_at = now
        next_status = now + 0.2
    if evaluated_at is not None and "north" in alerted and now - evaluated_at >= 1:
        break
check("north" in alerted, f"north subscriber saw no north alert: {alerted}")
check("south" not in seen, "north subscriber received a south alert")
check(not intruder.poll(200), "an unknown key received alerts")
check(not plain_sub.poll(200), "a plaintext subscriber received alerts")

# Operational state: a subscriber joining now gets the retained ops/start (ops/ is open to every subscriber key);
# a refused subscription sends nothing to anyone.
ops = socket(zmq.SUB, cfg["alerts"], cfg["keys"]["subscriber_north"])
ops.setsockopt(zmq.SUBSCRIBE, b"ops/")
check(ops.poll(60000), "a late ops/ subscriber got no retained ops/start")
topic, body = ops.recv_multipart()
state = json.loads(body)
check(topic == b"ops/start" and state.get("retained") is True and state.get("type") == "start", f"retained: {topic} {state}")
refused = socket(zmq.SUB, cfg["alerts"], cfg["keys"]["subscriber_north"])
refused.setsockopt(zmq.SUBSCRIBE, b"")
check(not ops.poll(1000), "a refused subscription made the daemon send its retained state")
check(not refused.poll(200), "a refused subscription received something")

# Replay: north may replay north, not south; the ingest key may not replay at all.
replay = socket(zmq.DEALER, cfg["replay"], cfg["keys"]["subscriber_north"])
page = request(replay, json.dumps({"clinic": "north", "after": 0}).encode())
check(page is not None and page["status"] == "ok" and len(page["alerts"]) > 0, f"north replay: {page}")
page = request(replay, json.dumps({"clinic": "south", "after": 0}).encode())
check(page is not None and page["status"] == "error" and page.get("alerts") is None, f"north replaying south: {page}")
check(unanswered(socket(zmq.DEALER, cfg["replay"], cfg["keys"]["ingest_all"]), json.dumps({"clinic": "north"}).encode()),
      "an ingest key reached replay")

ctx.destroy(linger=0)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("security: all checks passed")
