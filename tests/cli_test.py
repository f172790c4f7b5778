#!/usr/bin/env python3
"""Every command of the `sombra` CLI on a small database: exit statuses,
stdout (tables and --format json), errors on stderr; import of good files,
of malformed rows (bad number, missing column, unknown node in an edge row,
invalid UTF-8, in CSV and JSON Lines) with --on-error abort and skip, and of
empty files; export then import round-trips to the same files; backup
(plain and --compact); a progress bar only on a terminal; import from
pipes, stdin and FIFOs, NUL bytes in CSV, a wide CSV header, strict numeric
options. Ends with `cli: N passed, N failed`."""
import fcntl
import json
import os
import pty
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time

SOMBRA = sys.argv[1]
results = {"passed": 0, "failed": 0}


def run(*args, stdin=None, input=None, timeout=300, address_space=None, file_size=None):
    """The tool with args; address_space: bytes it may map at most (RLIMIT_AS); file_size:
    bytes a file it writes may hold (RLIMIT_FSIZE: a write past them fails, SIGXFSZ ignored)."""
    def limit():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    limited = address_space is not None or file_size is not None
    return subprocess.run([SOMBRA, *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout, stdin=stdin, input=input,
                          preexec_fn=limit if limited else None)


def check(name, ok, detail=""):
    if ok:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print(f"FAIL {name} {detail}")


def expect(name, out, rc=0, stdout=None, stderr=None):
    """out's exit status is rc, and the given texts appear in its streams."""
    ok = out.returncode == rc and (stdout is None or stdout in out.stdout) and \
        (stderr is None or stderr in out.stderr)
    check(name, ok, f"\n  rc={out.returncode}\n  stdout={out.stdout[:800]!r}"
                    f"\n  stderr={out.stderr[:800]!r}")
    return out


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


NODES_CSV = '''id,labels,name:string,age:int,score:double,ok:bool,blob:bytes,note
alice,Person;Admin,Alice,30,1.5,true,00ff,"has, a comma"
bob,Person,"Bob ""the builder""",41,,false,,
carol,,"",,0.1,,,"two
lines"
dave,Robot,Dave,-7,1e300,true,,
'''
EDGES_CSV = """src,dst,type,since:int,weight:double
alice,bob,KNOWS,2020,0.5
bob,carol,KNOWS,,
carol,alice,LIKES,1,
alice,dave,OWNS,,2.25
"""
NODES_JSONL = """{"id": "x", "labels": ["Thing"], "props": {"n": 1, "d": 2.5, "s": "é", "b": true, "z": null, "raw": {"$bytes": "0102"}}}

{"id": 7, "props": {}}
"""
EDGES_JSONL = """{"src": "x", "dst": 7, "type": "REL", "props": {"w": 3}}
{"src": 7, "dst": "x", "type": "REL"}
"""


def import_json(db, *args, input=None, timeout=300):
    out = run("import", db, "--format", "json", *args, input=input, timeout=timeout)
    try:
        return out, json.loads(out.stdout)
    except ValueError:
        return out, None


def test_help(d):
    expect("help", run("--help"), 0, stdout="sombra import")
    expect("no command", run(), 2, stderr="usage")
    expect("unknown command", run("frobnicate"), 2, stderr="unknown command")
    for cmd in ("stats", "verify", "checkpoint", "backup", "import", "export", "get",
                "neighbors", "path"):
        expect(f"{cmd} --help", run(cmd, "--help"), 0, stdout=f"sombra {cmd}")
    expect("bench --help", run("bench", "--help"), 0, stdout="usage")
    expect("bad option", run("stats", "--nope", os.path.join(d, "x")), 2)
    expect("too many arguments", run("stats", "a", "b"), 2, stderr="wrong number")
    expect("bad --format", run("stats", "x", "--format", "xml"), 2, stderr="--format")
    missing = os.path.join(d, "missing.db")
    expect("missing database", run("stats", missing), 1, stderr="missing.db")
    check("a missing database is not created", not os.path.exists(missing))


def test_import_and_reads(d):
    db = os.path.join(d, "g.db")
    nodes, edges = write(os.path.join(d, "n.csv"), NODES_CSV), write(os.path.join(d, "e.csv"), EDGES_CSV)
    out, summary = import_json(db, "--nodes", nodes, "--edges", edges)
    expect("import csv", out, 0)
    check("import summary", summary == {**(summary or {}), "nodes": 4, "edges": 4, "skipped": 0,
                                        "compacted": True}, repr(summary))
    check("no progress bar off a terminal", "\r" not in out.stderr, repr(out.stderr))

    out = expect("stats", run("stats", db), 0, stdout="pages_used")
    st = json.loads(expect("stats json", run("stats", db, "--format", "json")).stdout or "{}")
    check("stats figures", st.get("nodes") == 4 and st.get("edges") == 4 and
          st.get("file_bytes", 0) > 0 and st.get("page_size") == 8192 and
          st.get("pages", 0) >= st.get("pages_used", -1) > 0 and "cache_hits" in st and
          "wal_bytes" in st, repr(st))

    expect("verify", run("verify", db), 0, stdout="true")
    v = json.loads(run("verify", db, "--format", "json").stdout or "{}")
    check("verify json", v == {"healthy": True, "problems": []}, repr(v))
    expect("checkpoint", run("checkpoint", db), 0)

    out = expect("get", run("get", db, "1"), 0, stdout="name:string")
    check("get table", "Person;Admin" in out.stdout and "has, a comma" in out.stdout and
          "blob:bytes" in out.stdout and "00ff" in out.stdout, out.stdout)
    g = json.loads(run("get", db, "1", "--format", "json").stdout or "{}")
    check("get json", g == {"id": 1, "labels": ["Person", "Admin"],
                            "props": {"name": "Alice", "age": 30, "score": 1.5, "ok": True,
                                      "blob": {"$bytes": "00ff"}, "note": "has, a comma"}},
          repr(g))
    g = json.loads(run("get", db, "2", "--format", "json").stdout or "{}")
    check("get quotes", g.get("props", {}).get("name") == 'Bob "the builder"', repr(g))
    g = json.loads(run("get", db, "3", "--format", "json").stdout or "{}")
    check("get empty string and multi-line cell",
          g.get("props") == {"name": "", "score": 0.1, "note": "two\nlines"}, repr(g))
    e = json.loads(run("get", db, "1", "--edge", "--format", "json").stdout or "{}")
    check("get --edge", e == {"id": 1, "src": 1, "dst": 2, "type": "KNOWS",
                              "props": {"since": 2020, "weight": 0.5}}, repr(e))
    expect("get unknown node", run("get", db, "99"), 1, stderr="not found")
    expect("get bad id", run("get", db, "abc"), 2, stderr="not an id")

    def nb(*args):
        out = run("neighbors", db, *args, "--format", "json")
        check(f"neighbors {args} status", out.returncode == 0, out.stderr)
        return sorted((r["edge"], r["node"], r["type"], r["dir"]) for r in json.loads(out.stdout or "[]"))

    check("neighbors default out", nb("1") == [(1, 2, "KNOWS", "out"), (4, 4, "OWNS", "out")])
    check("neighbors --in", nb("1", "--in") == [(3, 3, "LIKES", "in")])
    check("neighbors --both", len(nb("1", "--both")) == 3)
    check("neighbors --type", nb("1", "--both", "--type", "OWNS") == [(4, 4, "OWNS", "out")])
    expect("neighbors table", run("neighbors", db, "1"), 0, stdout="KNOWS")
    expect("neighbors unknown node", run("neighbors", db, "77"), 1, stderr="77")

    p = json.loads(run("path", db, "1", "3", "--format", "json").stdout or "[]")
    check("path", [r["node"] for r in p] == [1, 2, 3], repr(p))
    expect("path table", run("path", db, "1", "3"), 0, stdout="step")
    expect("no path", run("path", db, "4", "1"), 1, stderr="no path")
    p = json.loads(run("path", db, "4", "1", "--in", "--format", "json").stdout or "[]")
    check("path --in", [r["node"] for r in p] == [4, 1], repr(p))
    expect("path unknown node", run("path", db, "1", "99"), 1, stderr="not found")
    return db


def export_dir(db, d, fmt):
    expect(f"export {fmt}", run("export", db, "--out", d, "--format-out", fmt), 0)
    return read(os.path.join(d, f"nodes.{fmt}")), read(os.path.join(d, f"edges.{fmt}"))


def test_round_trip(d, db):
    # Nodes of both formats, null and bytes values included, then the round trips.
    out = run("import", db, "--nodes", write(os.path.join(d, "n.jsonl"), NODES_JSONL),
              "--edges", write(os.path.join(d, "e.jsonl"), EDGES_JSONL))
    expect("import jsonl", out, 0)
    write(os.path.join(d, "at.csv"), "src,dst,type\n@1,@5,EXISTING\n")
    expect("edges to database nodes (@ID)", run("import", db, "--edges", os.path.join(d, "at.csv")), 0)
    g = json.loads(run("get", db, "5", "--format", "json").stdout or "{}")
    check("jsonl values", g.get("props") == {"n": 1, "d": 2.5, "s": "é", "b": True, "z": None,
                                             "raw": {"$bytes": "0102"}}, repr(g))
    for fmt in ("jsonl", "csv"):
        first = export_dir(db, os.path.join(d, f"x1-{fmt}"), fmt)
        copy = os.path.join(d, f"copy-{fmt}.db")
        expect(f"import the {fmt} export", run(
            "import", copy, "--nodes", os.path.join(d, f"x1-{fmt}", f"nodes.{fmt}"),
            "--edges", os.path.join(d, f"x1-{fmt}", f"edges.{fmt}")), 0)
        second = export_dir(copy, os.path.join(d, f"x2-{fmt}"), fmt)
        check(f"{fmt} round trip gives the same files", first == second,
              f"\n{first}\n{second}")
    # CSV has no null: everything else of the graph survives it, and it says so.
    out = run("export", db, "--format-out", "csv", "--only", "nodes")
    check("csv export warns about null", "null" in out.stderr, out.stderr)
    j1 = run("export", db).stdout
    j2 = run("export", os.path.join(d, "copy-jsonl.db")).stdout
    check("jsonl export to stdout round-trips", j1 == j2 and j1.count("\n") == 13, j1)
    out = run("export", db, "--format-out", "csv")
    check("csv export to stdout: two tables", "\n\nsrc,dst,type" in out.stdout, out.stdout)
    expect("export bad --only", run("export", db, "--only", "x"), 2)


BAD_NODES_CSV = b"""id,labels,age:int,name
n1,P,1,ok
n2,P,twelve,bad number
n3,P,3
n4,P,4,caf\xc3\xa9
n5,P,5,bad \xff utf8
n6,P,6,fine
"""
BAD_EDGES_CSV = b"""src,dst,type
n1,n6,E
n1,ghost,E
n2,n1,E
"""
BAD_NODES_JSONL = b"""{"id": "j1", "props": {"age": 1}}
{"id": "j2", "props": {"age": }}
{"labels": ["NoId"]}
{"id": "j4", "props": {"s": "\xc3\x28"}}
{"id": "j5", "labels": [""]}
{"id": "j6"}
"""
BAD_EDGES_JSONL = b"""{"src": "j1", "dst": "j6", "type": "E"}
{"src": "j1", "dst": "nobody", "type": "E"}
{"src": "j1", "dst": "j6"}
"""


def test_bad_rows(d, db):
    before = run("export", db).stdout
    n, e = write(os.path.join(d, "bad.csv"), BAD_NODES_CSV), write(os.path.join(d, "bad-e.csv"), BAD_EDGES_CSV)
    out = expect("bad csv aborts", run("import", db, "--nodes", n, "--edges", e), 1,
                 stderr="import aborted")
    for line, why in ((3, "not an integer"), (4, "missing column"), (6, "invalid UTF-8")):
        check(f"bad csv line {line}", f"{n}:{line}: " in out.stderr and why in out.stderr, out.stderr)
    check("unknown node in an edge row", f"{e}:3: unknown node 'ghost'" in out.stderr, out.stderr)
    check("the edge to a bad node is reported too", f"{e}:4: unknown node 'n2'" in out.stderr, out.stderr)
    check("good rows are not reported", f"{n}:2:" not in out.stderr and f"{n}:5:" not in out.stderr)
    check("an aborted import leaves the database as it was", run("export", db).stdout == before)

    n2, e2 = write(os.path.join(d, "bad.jsonl"), BAD_NODES_JSONL), write(os.path.join(d, "bad-e.jsonl"), BAD_EDGES_JSONL)
    out = expect("bad jsonl aborts", run("import", db, "--nodes", n2, "--edges", e2), 1)
    for line in (2, 3, 4, 5):
        check(f"bad jsonl line {line}", f"{n2}:{line}: " in out.stderr, out.stderr)
    check("jsonl invalid UTF-8 named", f"{n2}:4: invalid UTF-8" in out.stderr, out.stderr)
    check("jsonl unknown node", f"{e2}:2: unknown node 'nobody'" in out.stderr, out.stderr)
    check("jsonl edge without type", f"{e2}:3: missing type" in out.stderr, out.stderr)
    check("aborted jsonl leaves the database as it was", run("export", db).stdout == before)

    fresh = os.path.join(d, "fresh.db")
    expect("abort into a new database", run("import", fresh, "--nodes", n), 1)
    check("an aborted import does not leave a new database behind", not os.path.exists(fresh))

    out, s = import_json(fresh, "--nodes", n, "--edges", e, "--on-error", "skip")
    expect("skip bad csv rows", out, 0)
    check("skip counts", s is not None and s["nodes"] == 3 and s["edges"] == 1 and s["skipped"] == 5,
          repr(s))
    check("skipped rows still reported", f"{n}:3: " in out.stderr, out.stderr)
    out, s = import_json(fresh, "--nodes", n2, "--edges", e2, "--on-error", "skip")
    check("skip bad jsonl rows", out.returncode == 0 and s["nodes"] == 2 and s["edges"] == 1,
          repr(s) + out.stderr)
    expect("verify after skipping", run("verify", fresh), 0)

    write(os.path.join(d, "hdr.csv"), "name,labels\n")
    expect("a bad header", run("import", db, "--nodes", os.path.join(d, "hdr.csv")), 1,
           stderr="header must start with id,labels")
    write(os.path.join(d, "q.csv"), 'id,labels\n"unterminated,P\n')
    expect("malformed CSV quoting", run("import", db, "--nodes", os.path.join(d, "q.csv")), 1,
           stderr="malformed CSV")
    write(os.path.join(d, "dup.csv"), "id,labels\na,P\na,Q\n")
    expect("a node id given twice", run("import", db, "--nodes", os.path.join(d, "dup.csv")), 1,
           stderr="given twice (first on line 2)")
    expect("unknown extension", run("import", db, "--nodes", write(os.path.join(d, "n.txt"), "")),
           1, stderr="--format-in")
    expect("--format-in", run("import", db, "--nodes", os.path.join(d, "n.txt"), "--format-in", "csv"), 0)
    expect("no files", run("import", db), 2, stderr="--nodes")
    expect("missing file", run("import", db, "--nodes", os.path.join(d, "none.csv")), 1,
           stderr="No such file")
    check("failed imports changed nothing", run("export", db).stdout == before)


def feed(fifo, data):
    try:
        write(fifo, data)
    except OSError:
        pass  # let go below: the import never read it


def import_fifo(db, fifo, data, *args, input=None):
    """import_json with a thread writing data into fifo; (None, None) when it hangs."""
    feeder = threading.Thread(target=feed, args=(fifo, data), daemon=True)
    feeder.start()
    try:
        res = import_json(db, *args, input=input, timeout=60)
    except subprocess.TimeoutExpired:
        res = (None, None)
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees a feeder still waiting
    feeder.join(10)
    return res


def test_pipes(d):
    """An input that can be read only once is read once: both passes see every row."""
    db = os.path.join(d, "pipe.db")
    out, s = import_json(db, "--nodes", "-", "--format-in", "csv", input=NODES_CSV, timeout=60)
    check("import nodes from stdin (-)", out.returncode == 0 and s and s["nodes"] == 4,
          repr(s) + out.stderr)
    fifo = os.path.join(d, "edges.fifo")
    os.mkfifo(fifo)
    args = ("--nodes", "/dev/stdin", "--edges", fifo, "--format-in", "csv")
    out, s = import_fifo(db, fifo, EDGES_CSV, *args, input=NODES_CSV.replace("alice", "@1"))
    check("a bad row in a pipe aborts", out is not None and out.returncode == 1 and
          "node id '@1'" in out.stderr, out and out.stderr)
    out, s = import_fifo(db, fifo, EDGES_CSV, *args, input=NODES_CSV)
    check("nodes from a pipe (/dev/stdin), edges from a FIFO", out is not None and
          out.returncode == 0 and s and s["nodes"] == 4 and s["edges"] == 4,
          out and repr(s) + out.stderr)
    st = json.loads(run("stats", db, "--format", "json").stdout or "{}")
    check("the aborted pipe import wrote nothing", st.get("nodes") == 8 and st.get("edges") == 4,
          repr(st))
    out = run("import", db, "--nodes", "-", input=NODES_JSONL)
    expect("stdin needs --format-in", out, 1, stderr="--format-in")
    expect("stdin for both files", run("import", db, "--nodes", "-", "--edges", "-",
                                       "--format-in", "csv"), 2, stderr="not both")


def test_nul_bytes(d):
    """A NUL byte would cut a name or id short: the row is refused, line named."""
    db = os.path.join(d, "nul.db")
    n = write(os.path.join(d, "nul.csv"),
              b"id,labels,name\na\x00x,P,one\na,P,two\nb,P\x00Q,three\nc,P,f\x00our\n")
    out = expect("NUL in an id or label aborts", run("import", db, "--nodes", n), 1)
    check("NUL in an id: its line", f"{n}:2: column 1: a NUL byte" in out.stderr, out.stderr)
    check("NUL in a label: its line", f"{n}:4: column 2: a NUL byte" in out.stderr, out.stderr)
    check("a NUL in a string value is no fault", f"{n}:5:" not in out.stderr, out.stderr)
    e = write(os.path.join(d, "nul-e.csv"), b"src,dst,type\n@1,@1,T\x00U\n")
    out = expect("NUL in an edge type", run("import", db, "--edges", e), 1,
                 stderr=f"{e}:2: column 3: a NUL byte")
    h = write(os.path.join(d, "nul-h.csv"), b"id,labels,na\x00me\na,P,x\n")
    expect("NUL in the header", run("import", db, "--nodes", h), 1,
           stderr=f"{h}:1: column 3: a NUL byte")
    v = write(os.path.join(d, "nul-v.csv"), b"id,labels,name\nc,P,f\x00our\n")
    out, s = import_json(db, "--nodes", v)
    g = json.loads(run("get", db, "1", "--format", "json").stdout or "{}")
    check("a string value keeps its NUL byte", out.returncode == 0 and
          g.get("props") == {"name": "f\x00our"}, repr(g) + out.stderr)


def test_wide_header(d):
    """The duplicate-column check of a CSV header is not quadratic."""
    cols = 200000
    n = write(os.path.join(d, "wide.csv"),
              "id,labels," + ",".join(f"k{i}:int" for i in range(cols)) + "\n")
    start = time.monotonic()
    try:
        out = run("import", os.path.join(d, "wide.db"), "--nodes", n, timeout=60)
        check("a 200,000-column header", out.returncode == 0, out.stderr)
    except subprocess.TimeoutExpired:
        check("a 200,000-column header", False, "over 60 s")
    check("a 200,000-column header in seconds", time.monotonic() - start < 20)
    n = write(os.path.join(d, "dupcol.csv"), "id,labels,a:int,b,a,c,a:int\n")
    expect("a column given twice", run("import", os.path.join(d, "wide.db"), "--nodes", n), 1,
           stderr="column 7 'a:int' given twice (first: 3)")
    n = write(os.path.join(d, "samekey.csv"), "id,labels,a:int,a:string,a\n")
    expect("'a' is 'a:string'", run("import", os.path.join(d, "wide.db"), "--nodes", n), 1,
           stderr="column 5 'a' given twice (first: 4)")


def test_numeric_options(d):
    db, n = os.path.join(d, "opts.db"), write(os.path.join(d, "opts.csv"), NODES_CSV)
    for bad in ("-1", "0", "10x", "", " 5", "+5", "1000001", "18446744073709551617"):
        expect(f"--batch {bad!r}", run("import", db, "--nodes", n, "--batch", bad), 2,
               stderr="--batch: a whole number from 1 to 1000000")
    check("no database after bad options", not os.path.exists(db))
    out, s = import_json(db, "--nodes", n, "--batch", "1000000")
    check("--batch 1000000", out.returncode == 0 and s and s["nodes"] == 4, out.stderr)
    for bad in ("-1", "1x", "0", "18446744073709551616"):
        expect(f"get {bad!r}", run("get", db, "--", bad), 2, stderr="not an id")


def test_import_in_many_batches(d):
    """Batches written while the next fills: every row once, each edge between its own nodes."""
    n = write(os.path.join(d, "batched.csv"), "id,labels,k:int\n" +
              "".join(f"n{i},Thing,{i}\n" for i in range(1000)))
    e = write(os.path.join(d, "batched-e.csv"), "src,dst,type,i:int\n" +
              "".join(f"n{(i * 7919) % 1000},n{(i * 104729) % 1000},R,{i}\n" for i in range(4000)))
    db = os.path.join(d, "batched.db")
    out, s = import_json(db, "--nodes", n, "--edges", e, "--batch", "7", "--no-compact")
    check("import in batches of 7", out.returncode == 0 and s and s["nodes"] == 1000 and
          s["edges"] == 4000, out.stderr)
    k_of, ends = {}, {}
    for line in run("export", db).stdout.splitlines():
        row = json.loads(line)
        if "src" in row:
            ends[row["props"]["i"]] = (row["src"], row["dst"])
        else:
            k_of[row["id"]] = row["props"]["k"]
    check("every node once", sorted(k_of.values()) == list(range(1000)), repr(len(k_of)))
    wrong = [i for i in range(4000) if i not in ends or
             (k_of.get(ends[i][0]), k_of.get(ends[i][1])) != ((i * 7919) % 1000, (i * 104729) % 1000)]
    check("every edge once, between the nodes its row names", len(ends) == 4000 and not wrong,
          repr(wrong[:5]))


def test_import_that_runs_out_of_room(d):
    """Writes that start failing part way: the first rows are written, and the message says how many."""
    n = write(os.path.join(d, "roomy.csv"), "id,labels,k:int,pad:string\n" +
              "".join(f"n{i},Thing,{i},{'x' * 60}\n" for i in range(30000)))
    db = os.path.join(d, "cramped.db")
    out = run("import", db, "--nodes", n, "--batch", "500", "--no-compact", file_size=1 << 20)
    m = re.search(r"(\d+) nodes and 0 edges were written before it(, and its (\d+) nodes may be "
                  r"there too)?", out.stderr)
    check("an import that runs out of room fails and says what was written",
          out.returncode == 1 and m is not None and 0 < int(m.group(1)) < 30000, out.stderr)
    if m is None:
        return
    written, unsure = int(m.group(1)), int(m.group(3) or 0)
    ks = sorted(json.loads(line)["props"]["k"] for line in run("export", db).stdout.splitlines())
    check("the rows there are the first ones, those said and at most the failed batch",
          ks == list(range(len(ks))) and written <= len(ks) <= written + unsure,
          f"{len(ks)} nodes, {written} said written, {unsure} unsure")


def test_address_space_limit(d):
    """A database opens for writing in a process limited to 3 GiB of address space."""
    if run("--help", address_space=3 << 30).returncode != 0:
        print("skip: this build of the tool cannot run in 3 GiB (a sanitizer's shadow memory)")
        return
    db = os.path.join(d, "limited.db")
    n = write(os.path.join(d, "limited.csv"), "id,labels,k:int\n" +
              "".join(f"n{i},Thing,{i}\n" for i in range(100)))
    out = run("import", db, "--nodes", n, "--format", "json", address_space=3 << 30)
    check("import under a 3 GiB address-space limit", out.returncode == 0 and
          json.loads(out.stdout or "{}").get("nodes") == 100, out.stderr)


def test_compact_on_import(d):
    """A database the import makes is compacted: same graph, no free pages, no log left."""
    n = write(os.path.join(d, "many.csv"), "id,labels,k:int\n" +
              "".join(f"n{i},Thing,{i}\n" for i in range(3000)))
    e = write(os.path.join(d, "many-e.csv"), "src,dst,type\n" +
              "".join(f"n{(i * 7919) % 3000},n{(i * 104729) % 3000},R\n" for i in range(12000)))
    small, big = os.path.join(d, "imported-compact.db"), os.path.join(d, "imported-loose.db")
    out, s = import_json(small, "--nodes", n, "--edges", e, "--batch", "500")
    check("compacted import", out.returncode == 0 and s and s["compacted"] is True, out.stderr)
    out, s = import_json(big, "--nodes", n, "--edges", e, "--batch", "500", "--no-compact")
    check("--no-compact import", out.returncode == 0 and s and s["compacted"] is False, out.stderr)
    check("no log beside the compacted database", not os.path.exists(small + "-wal"))
    check("nothing else left beside it",
          not [f for f in os.listdir(d) if f.startswith("imported-compact.db.")],
          repr(os.listdir(d)))
    st = json.loads(run("stats", small, "--format", "json").stdout or "{}")
    loose = json.loads(run("stats", big, "--format", "json").stdout or "{}")
    check("compacted: no free page, smaller file",
          st.get("pages_free") == 0 and loose.get("pages_free", 0) > 0 and
          st.get("file_bytes", 1 << 60) < loose.get("file_bytes", 0), repr((st, loose)))
    expect("verify the compacted database", run("verify", small), 0, stdout="true")
    one, other = run("export", small), run("export", big)
    check("the same graph either way", one.returncode == 0 and other.returncode == 0 and
          "\"k\":2999" in one.stdout and one.stdout == other.stdout, one.stderr + other.stderr)
    out, s = import_json(small, "--nodes", write(os.path.join(d, "one.csv"), "id,labels\nz,Z\n"))
    check("an existing database is not compacted",
          out.returncode == 0 and s and s["compacted"] is False and s["nodes"] == 1, out.stderr)


def test_empty(d):
    db = os.path.join(d, "empty.db")
    for name, data in (("empty.csv", ""), ("empty.jsonl", ""), ("header.csv", "id,labels,a:int\n"),
                       ("blank.jsonl", "\n\n")):
        out, s = import_json(db, "--nodes", write(os.path.join(d, name), data))
        check(f"import {name}", out.returncode == 0 and s == {**s, "nodes": 0, "edges": 0},
              repr(s) + out.stderr)
    out, s = import_json(db, "--edges", write(os.path.join(d, "e-empty.csv"), ""))
    check("import empty edges file", out.returncode == 0 and s["edges"] == 0, out.stderr)
    st = json.loads(run("stats", db, "--format", "json").stdout or "{}")
    check("empty imports made nothing", st.get("nodes") == 0 and st.get("edges") == 0, repr(st))
    expect("export of an empty database", run("export", db), 0)


def test_backup_and_corruption(d, db):
    dest = os.path.join(d, "backup.db")
    expect("backup", run("backup", db, dest), 0)
    check("backup holds the same graph", run("export", dest).stdout == run("export", db).stdout)
    expect("backup verifies", run("verify", dest), 0)
    expect("backup never overwrites", run("backup", db, dest), 1, stderr="exists")
    expect("backup arguments", run("backup", db), 2)
    compact = os.path.join(d, "compact.db")
    expect("backup --compact", run("backup", "--compact", db, compact), 0)
    check("compact backup holds the same graph",
          run("export", compact).stdout == run("export", db).stdout)
    expect("compact backup verifies", run("verify", compact), 0)
    st = json.loads(run("stats", compact, "--format", "json").stdout or "{}")
    check("compact backup has no free page", st.get("pages_free") == 0 and
          st.get("pages", 0) * st.get("page_size", 0) == os.path.getsize(compact), repr(st))
    check("compact backup is no larger than a plain one",
          os.path.getsize(compact) <= os.path.getsize(dest),
          f"{os.path.getsize(compact)} > {os.path.getsize(dest)}")
    expect("compact backup never overwrites", run("backup", db, compact, "--compact"), 1,
           stderr="exists")
    expect("backup --compact arguments", run("backup", "--compact", db), 2)
    expect("backup --help names --compact", run("backup", "--help"), 0, stdout="--compact")
    # Another process holding the database for writing (its lock is an flock): the read-only
    # commands work beside it and change no byte of its files; a command that writes says so.
    wal = db + "-wal"
    before = (read(db), read(wal) if os.path.exists(wal) else None)
    with open(db, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        expect("backup of a database in use", run("backup", db, dest + "2"), 0)
        expect("compact backup of a database in use",
               run("backup", "--compact", db, compact + "2"), 0)
        expect("stats of a database in use", run("stats", db), 0, stdout="nodes")
        expect("verify of a database in use", run("verify", db), 0)
        check("export of a database in use", run("export", db).stdout == run("export", dest).stdout)
        expect("checkpoint of a database in use", run("checkpoint", db), 1,
               stderr="open in another process")
    after = (read(db), read(wal) if os.path.exists(wal) else None)
    check("read-only commands change no file", before == after)
    check("the copy of a database in use is whole",
          run("export", dest + "2").stdout == run("export", db).stdout)
    check("the compact copy of a database in use is whole",
          run("export", compact + "2").stdout == run("export", db).stdout)
    # Damage a page of the copy: verify (or open) must say so with a failing status.
    data = bytearray(read(dest))
    for off in range(2 * 8192 + 100, len(data), 8192):
        data[off] ^= 0x5a
    write(dest, bytes(data))
    out = run("verify", dest)
    check("verify finds damage", out.returncode == 1 and out.stderr.strip() != "", out.stderr)
    # A compact copy reads every page with its checksum: a damaged source fails, leaving nothing.
    expect("compact backup of a damaged database fails", run("backup", "--compact", dest,
                                                            compact + "3"), 1)
    check("the failed compact copy is removed", not os.path.exists(compact + "3"))


def test_progress(d):
    db = os.path.join(d, "tty.db")
    nodes = write(os.path.join(d, "many.csv"), "id,labels\n" + "".join(f"k{i},N\n" for i in range(3000)))
    master, slave = pty.openpty()
    p = subprocess.run([SOMBRA, "import", db, "--nodes", nodes, "--batch", "1000"],
                       stdout=subprocess.PIPE, stderr=slave, timeout=300)
    os.close(slave)
    seen = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(master)
    check("progress bar on a terminal", p.returncode == 0 and b"\rimport: nodes [" in seen and
          b"3000/3000" in seen, repr(seen[-300:]))


def test_bench():
    out = run("bench", "--quick", "--json", "--workload", "get_node", "--engine", "sombra",
              "--dataset", "social", "--nodes", "300", "--seconds", "0.05")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    check("bench runs the suite", out.returncode == 0 and rows and
          rows[0]["workload"] == "get_node", out.stdout + out.stderr)
    expect("bench bad option", run("bench", "--nope"), 2)


def main():
    with tempfile.TemporaryDirectory(prefix="sombra-cli-") as d:
        test_help(d)
        db = test_import_and_reads(d)
        test_round_trip(d, db)
        test_bad_rows(d, db)
        test_empty(d)
        test_pipes(d)
        test_nul_bytes(d)
        test_wide_header(d)
        test_numeric_options(d)
        test_import_in_many_batches(d)
        test_address_space_limit(d)
        test_import_that_runs_out_of_room(d)
        test_compact_on_import(d)
        test_backup_and_corruption(d, db)
        test_progress(d)
        test_bench()
    print(f"cli: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
