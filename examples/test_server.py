#!/usr/bin/env python3
"""The example server end to end: starts sombra-server on a port the kernel
picks (--port 0, read back from its first line), sends every endpoint good
and bad requests with urllib, checks the answers, and stops it with SIGTERM
(it must exit 0, having closed the database). Then the guards: Host and
Content-Type checks, bytes values both ways, a stored value JSON cannot
carry (a NaN, made with the `sombra` tool), the idle timeout, the per-IP
limit and strict numeric options, on servers of their own. Prints "server:
N passed, N failed" last; exits non-zero on any failure.

usage: test_server.py PATH/TO/sombra-server PATH/TO/sombra
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client
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


def call(base, method, path, body=None, raw=None, headers=None):
    """(status, content type, text) of one request; raw is a body sent as it is. A body goes
    as application/json unless headers say otherwise (None as a value: leave it out)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    sent = {"Content-Type": "application/json"} if data is not None else {}
    for name, value in {**sent, **(headers or {})}.items():
        if value is not None:
            req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def call_json(base, method, path, body=None, raw=None, headers=None):
    status, ctype, text = call(base, method, path, body, raw, headers)
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


def exercise_guards(base):
    port = base.rsplit(":", 1)[1]
    # A simple form (or a script without a preflight) cannot send application/json.
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  "application/jsonp"):
        status, doc = call_json(base, "POST", "/nodes", {}, headers={"Content-Type": ctype})
        check(f"POST with Content-Type {ctype} is 415", status == 415, f"{status} {doc}")
    status, doc = call_json(base, "POST", "/nodes", {},
                            headers={"Content-Type": "Application/JSON; charset=utf-8"})
    check("application/json with a charset is accepted", status == 201, f"{status} {doc}")
    # DNS rebinding: the page's own name stays in the Host header.
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1", "127.0.0.1:1",
                 f"127.0.0.1.evil.example:{port}"):
        for method, body in (("GET", None), ("POST", {})):
            status, doc = call_json(base, method, "/nodes/1" if method == "GET" else "/nodes",
                                    body, headers={"Host": host})
            check(f"{method} with Host {host} is 421", status == 421, f"{status} {doc}")
    status, doc = call_json(base, "GET", "/nodes/1", headers={"Host": f"LocalHost:{port}"})
    check("Host localhost:PORT is served", status == 200, f"{status} {doc}")
    # Bytes both ways, in the form of the sombra tool's JSON Lines.
    status, doc = call_json(base, "POST", "/nodes", {"props": {"raw": {"$bytes": "00ff10"}}})
    check("POST bytes as {$bytes: HEX}", status == 201, f"{status} {doc}")
    if status == 201:
        status, doc = call_json(base, "GET", f"/nodes/{doc['id']}")
        check("GET gives the bytes back", status == 200 and
              doc["props"] == {"raw": {"$bytes": "00ff10"}}, f"{status} {doc}")
    status, doc = call_json(base, "POST", "/nodes", {"props": {"raw": {"$bytes": "0g"}}})
    check("bad hex is 400, naming the property", status == 400 and "raw" in doc["error"],
          f"{status} {doc}")


def start(server, db, *args):
    """(process, base URL or None) of a server on a port of the kernel's choice."""
    proc = subprocess.Popen([server, "--db", db, "--port", "0", *args], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (http://127\.0\.0\.1:\d+)$", line.strip())
    check(f"the server {' '.join(args)} says where it listens", m is not None, repr(line))
    return proc, m.group(1) if m else None


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    check("SIGTERM stops it cleanly", code == 0, f"exit {code}")


def served(base):
    """Whether a GET gets an HTTP answer, rather than a closed connection."""
    try:
        call(base, "GET", "/nodes/1")
        return True
    except (OSError, http.client.HTTPException):
        return False


def exercise_values(server, sombra, tmp):
    """A stored value JSON cannot carry (the CLI stores a NaN; a string that is not UTF-8 takes
    the same path) is an error naming it, never a property silently left out."""
    db = os.path.join(tmp, "values.sombra")
    with open(os.path.join(tmp, "n.csv"), "w") as f:
        f.write("id,labels,d:double,b:bytes\na,P,nan,00ff\nb,P,1.5,\n")
    out = subprocess.run([sombra, "import", db, "--nodes", f.name], capture_output=True, text=True)
    check("the sombra tool makes the database", out.returncode == 0, out.stderr)
    proc, base = start(server, db)
    try:
        if base is None:
            return
        status, doc = call_json(base, "GET", "/nodes/1")
        check("a NaN is a 500 naming the property", status == 500 and "'d'" in doc["error"],
              f"{status} {doc}")
        status, doc = call_json(base, "GET", "/nodes/2")
        check("the other node reads", status == 200 and doc["props"] == {"d": 1.5}, f"{doc}")
    finally:
        stop(proc)


def exercise_limits(server, tmp):
    proc, base = start(server, os.path.join(tmp, "limits.sombra"), "--timeout", "1",
                       "--max-per-ip", "2")
    try:
        if base is None:
            return
        # Two idle connections take this address's share; a third is refused.
        idle = [socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
                for _ in range(2)]
        time.sleep(0.3)
        check("a third connection from one address is refused", not served(base))
        # The idle ones are closed after the timeout (1 s), and the address is served again.
        for sock in idle:
            sock.settimeout(10)
            try:
                closed = sock.recv(1) == b""
            except OSError:
                closed = True
            check("an idle connection is closed after --timeout", closed)
            sock.close()
        deadline = time.monotonic() + 5
        while not served(base) and time.monotonic() < deadline:
            time.sleep(0.1)
        check("served again once they are gone", served(base))
    finally:
        stop(proc)
    for args in (("--port", "-1"), ("--port", "80x"), ("--port", "65536"), ("--threads", "0"),
                 ("--threads", "4294967297"), ("--timeout", "-5"), ("--max-per-ip", ""),
                 ("--max-connections", "2", "--threads", "4")):
        out = subprocess.run([server, "--db", os.path.join(tmp, "x.sombra"), *args],
                             capture_output=True, text=True, timeout=10)
        check(f"sombra-server {' '.join(args)} is refused", out.returncode == 2, out.stderr)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sombra-server-") as tmp:
        proc, base = start(sys.argv[1], os.path.join(tmp, "s.sombra"), "--threads", "4")
        try:
            if base:
                exercise(base)
                exercise_guards(base)
        except Exception as e:  # a crash of the test itself is a failure, and the server must stop
            check("the test ran to its end", False, repr(e))
        finally:
            stop(proc)
        for name, run in (("values", lambda: exercise_values(sys.argv[1], sys.argv[2], tmp)),
                          ("limits", lambda: exercise_limits(sys.argv[1], tmp))):
            try:
                run()
            except Exception as e:
                check(f"the {name} test ran to its end", False, repr(e))
    print(f"server: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
