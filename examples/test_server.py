#!/usr/bin/env python3
"""The example server end to end: starts sombra-server on a port the kernel
picks (--port 0, read back from its first line), sends every endpoint good
and bad requests with urllib, checks the answers, and stops it with SIGTERM
(it must exit 0, having closed the database). Prints "server: N passed, N
failed" last; exits non-zero on any failure.

usage: test_server.py PATH/TO/sombra-server
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

passed = 0
failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what} {detail}", flush=True)


def call(base, method, path, body=None, raw=None):
    """(status, content type, text) of one request; raw is a body sent as it is."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def call_json(base, method, path, body=None, raw=None):
    status, ctype, text = call(base, method, path, body, raw)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    check(f"{method} {path} answers JSON", ctype.startswith("application/json") and doc is not None,
          f"{ctype!r} {text!r}")
    return status, doc


def exercise(base):
    # POST /nodes
    status, doc = call_json(base, "POST", "/nodes",
                            {"labels": ["Person"], "props": {"name": "Ada", "age": 36, "score": 1.5,
                                                             "admin": True}})
    check("POST /nodes creates", status == 201 and isinstance(doc.get("id"), int), f"{status} {doc}")
    ada = doc["id"]
    status, doc = call_json(base, "POST", "/nodes", {"labels": ["Person"], "props": {"name": "Bob"}})
    check("POST /nodes creates a second", status == 201, f"{status} {doc}")
    bob = doc["id"]
    status, doc = call_json(base, "POST", "/nodes", {})
    check("POST /nodes with no labels or props", status == 201, f"{status} {doc}")

    # GET /nodes/ID
    status, doc = call_json(base, "GET", f"/nodes/{ada}")
    check("GET /nodes/ID", status == 200 and doc == {
        "id": ada, "labels": ["Person"],
        "props": {"name": "Ada", "age": 36, "score": 1.5, "admin": True}}, f"{status} {doc}")

    # POST /edges, then GET /nodes/ID/neighbors in each direction
    status, doc = call_json(base, "POST", "/edges",
                            {"src": ada, "dst": bob, "type": "KNOWS", "props": {"since": 2020}})
    check("POST /edges creates", status == 201 and isinstance(doc.get("id"), int), f"{status} {doc}")
    edge = doc["id"]
    status, doc = call_json(base, "GET", f"/nodes/{ada}/neighbors")
    check("GET /nodes/ID/neighbors", status == 200 and doc == {
        "id": ada, "neighbors": [{"edge": edge, "node": bob, "type": "KNOWS", "dir": "out"}]},
        f"{status} {doc}")
    status, doc = call_json(base, "GET", f"/nodes/{bob}/neighbors?dir=in")
    check("neighbors ?dir=in", status == 200 and [n["node"] for n in doc["neighbors"]] == [ada],
          f"{status} {doc}")
    status, doc = call_json(base, "GET", f"/nodes/{bob}/neighbors?dir=out")
    check("neighbors ?dir=out", status == 200 and doc["neighbors"] == [], f"{status} {doc}")
    status, doc = call_json(base, "GET", f"/nodes/{bob}/neighbors?dir=sideways")
    check("neighbors ?dir=bad is 400", status == 400 and "error" in doc, f"{status} {doc}")

    # unknown ids: 404
    for path in ("/nodes/999999", "/nodes/999999/neighbors"):
        status, doc = call_json(base, "GET", path)
        check(f"GET {path} is 404", status == 404 and "error" in doc, f"{status} {doc}")
    status, doc = call_json(base, "POST", "/edges", {"src": ada, "dst": 999999, "type": "KNOWS"})
    check("POST /edges to an unknown node is 404", status == 404, f"{status} {doc}")

    # bad input: 400
    bad = [("/nodes", b"{not json"), ("/nodes", b"[1, 2]"), ("/nodes", b""),
           ("/nodes", b'{"labels": "Person"}'), ("/nodes", b'{"labels": [1]}'),
           ("/nodes", b'{"props": {"nested": {"a": 1}}}'), ("/nodes", b'{"props": [1]}'),
           ("/edges", b'{"src": 1, "dst": 2}'), ("/edges", b'{"src": "1", "dst": 2, "type": "T"}'),
           ("/edges", b'{"src": -4, "dst": 2, "type": "T"}'), ("/edges", b"\xff\xfe")]
    for path, raw in bad:
        status, doc = call_json(base, "POST", path, raw=raw)
        check(f"POST {path} {raw!r} is 400", status == 400 and "error" in doc, f"{status} {doc}")
    status, doc = call_json(base, "POST", "/nodes", raw=b'{"labels": [' + b'"L",' * 600000 + b'"L"]}')
    check("a body over 1 MiB is 413", status == 413, f"{status} {doc}")

    # unknown paths and wrong methods
    for method, path, want in (("GET", "/nope", 404), ("GET", "/nodes/abc", 404),
                               ("GET", "/nodes/1/friends", 404), ("GET", "/nodes", 405),
                               ("POST", "/metrics", 405), ("DELETE", f"/nodes/{ada}", 405),
                               ("POST", f"/nodes/{ada}", 405)):
        status, doc = call_json(base, method, path, raw=b"{}" if method == "POST" else None)
        check(f"{method} {path} is {want}", status == want, f"{status} {doc}")

    # GET /metrics: Prometheus text that counts what happened above
    status, ctype, text = call(base, "GET", "/metrics")
    check("GET /metrics", status == 200 and ctype.startswith("text/plain; version=0.0.4"),
          f"{status} {ctype}")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            check("a HELP or TYPE line", re.match(r"# (HELP|TYPE) sombra_[a-z_]+ \S", line) is not None,
                  line)
            continue
        m = re.match(r'^(sombra_[a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
        check("a sample line", m is not None, line)
        if m:
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    check("metrics count the commits", samples.get("sombra_commits_total", 0) >= 4, str(samples.get(
        "sombra_commits_total")))
    check("metrics count node creations",
          samples.get('sombra_operations_total{kind="node_create"}') == 3)
    check("metrics count reads", samples.get('sombra_operations_total{kind="node_get"}', 0) >= 2)
    check("metrics have commit latencies", samples.get("sombra_commit_latency_seconds_count", 0) >= 4)
    # Prometheus' own linter, where it is installed (Debian's prometheus package has it).
    promtool = shutil.which("promtool")
    if promtool:
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                              text=True)
        check("promtool check metrics", lint.returncode == 0 and not lint.stdout.strip(),
              lint.stdout + lint.stderr)
    else:
        print("promtool not installed: the exposition format is checked by test_metrics only")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sombra-server-") as tmp:
        proc = subprocess.Popen([sys.argv[1], "--db", os.path.join(tmp, "s.sombra"), "--port", "0",
                                 "--threads", "4"], stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            m = re.match(r"listening on (http://127\.0\.0\.1:\d+)$", line.strip())
            check("the server says where it listens", m is not None, repr(line))
            if m:
                exercise(m.group(1))
        except Exception as e:  # a crash of the test itself is a failure, and the server must stop
            check("the test ran to its end", False, repr(e))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            check("SIGTERM stops it cleanly", code == 0, f"exit {code}")
    print(f"server: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
