#!/usr/bin/env python3
"""abi_test.py - the shared library as programs outside the build see it.

Usage: abi_test.py LIBSOMBRA_SO ABI_HOST BUILD_ROOT SOURCE_ROOT

- libsombra.so exports only the functions of sombra.h (`nm -D --defined-only`
  lists nothing that does not start with sombra_), and sombra_open among them;
- abi_host, linked against it and defining io_sync, an internal name of the
  library, makes FULL commits that the library still syncs itself;
- the uninstalled pkg-config file gives -I<source>/include, where sombra.h is.

Ends with "abi: N passed, N failed"; exits non-zero on any failure.
"""
import os
import subprocess
import sys
import tempfile

results = []


def check(ok, what, detail=""):
    results.append(ok)
    print(("PASS " if ok else "FAIL ") + what + ("" if ok or not detail else ": " + detail))


def exports(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def main():
    lib, host, build, source = sys.argv[1:5]

    names = exports(lib)
    foreign = [n for n in names if not n.startswith("sombra_")]
    check(not foreign, "libsombra.so exports only sombra_ symbols",
          "%d others: %s" % (len(foreign), " ".join(foreign[:20])))
    check("sombra_open" in names and "sombra_version" in names,
          "libsombra.so exports sombra_open and sombra_version", " ".join(names[:20]))

    with tempfile.TemporaryDirectory(prefix="sombra-abi-") as tmp:
        run = subprocess.run([host, tmp], capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        check(run.returncode == 0, "a host defining io_sync does not replace the library's")

    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(build, "meson-uninstalled"))
    run = subprocess.run(["pkg-config", "--cflags", "sombra"], env=env, capture_output=True,
                         text=True)
    include = os.path.join(os.path.realpath(source), "include")
    dirs = [os.path.realpath(f[2:]) for f in run.stdout.split() if f.startswith("-I")]
    check(run.returncode == 0 and include in dirs,
          "the uninstalled pkg-config file gives -I" + include, run.stdout + run.stderr)
    check(os.path.isfile(os.path.join(include, "sombra.h")), "sombra.h is in " + include)

    failed = results.count(False)
    print("abi: %d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
