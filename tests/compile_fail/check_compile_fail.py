#!/usr/bin/env python3
"""Compile-fail check: a snippet must be rejected by the C++ compiler, and the first
error-related line of the diagnostics (GCC: "In instantiation of 'struct kiln::graph_error<...>'")
must carry kiln's message: it must contain every --expect text.

usage: check_compile_fail.py SOURCE ROOT [--eigen DIR] [--expect TEXT]... [--carrier NAME] [--expect-success] -- COMPILER...

--carrier names the template whose instantiation carries the message (default graph_error;
backend_error for a backend that lacks a group kind's kernel).
"""
import os
import re
import subprocess
import sys


def main(argv):
    if "--" not in argv:
        sys.exit("usage: check_compile_fail.py SOURCE ROOT [--eigen DIR] [--expect TEXT]... [--carrier NAME] [--expect-success] -- COMPILER...")
    split = argv.index("--")
    opts, compiler = argv[:split], argv[split + 1:]
    source, root = opts[0], opts[1]
    eigen = "/usr/include/eigen3"
    expects, expect_success, carrier = [], False, "graph_error"
    i = 2
    while i < len(opts):
        if opts[i] == "--expect":
            expects.append(opts[i + 1])
            i += 2
        elif opts[i] == "--eigen":
            eigen = opts[i + 1]
            i += 2
        elif opts[i] == "--carrier":
            carrier = opts[i + 1]
            i += 2
        elif opts[i] == "--expect-success":
            expect_success = True
            i += 1
        else:
            sys.exit(f"unknown option {opts[i]}")
    if not compiler:
        sys.exit("no compiler given after --")

    cmd = compiler + ["-std=c++20", "-I" + root, "-isystem", eigen, "-Wno-ignored-attributes",
                      "-fsyntax-only", "-fdiagnostics-color=never", source]
    env = dict(os.environ, LC_ALL="C", LANG="C")
    print("$", " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=240)
    output = proc.stdout

    if expect_success:
        if proc.returncode != 0:
            print(output)
            print(f"FAIL: {source} was expected to compile")
            return 1
        print(f"ok: {source} compiles")
        return 0

    if proc.returncode == 0:
        print(f"FAIL: {source} compiled, but it must be rejected")
        return 1
    lines = output.splitlines()
    first = next((l for l in lines if re.search(r"In instantiation of|error:", l)), None)
    if first is None:
        print(output)
        print("FAIL: the compiler failed without an error line")
        return 1
    print("first error line:", first)
    # GCC prints the message inside a template argument and escapes its quotes (\'v\'); compare the
    # message as kiln wrote it, so an expectation can name a quoted identifier exactly.
    first = first.replace("\\'", "'").replace('\\"', '"')
    problems = []
    if carrier + "<" not in first:
        problems.append(f"it is not the {carrier}<...> instantiation that carries kiln's message")
    for text in expects:
        if text not in first:
            problems.append(f"it does not contain {text!r}")
    assert_text = {"graph_error": "the graph is invalid", "backend_error": "a backend has no kernel"}.get(carrier, "kiln:")
    if assert_text not in output:
        problems.append("kiln's static_assert text is missing from the output")
    if problems:
        print(output[:6000])
        for p in problems:
            print("FAIL:", p)
        return 1
    print(f"ok: {source} is rejected with the expected message")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
