#!/usr/bin/env python3
"""include-graph.py: the include graph of src/ and its cycles.

A module is a source file and its header (core/lock.c + core/lock.h); a
module depends on another when it includes that one's header.  Reports:

  * cycles between folders (src/smapi, src/core/model, ...): the folder
    graph must be a DAG;
  * cycles between the modules of any one folder;
  * dependencies that point up the layers (util -> anything, backend ->
    core or a front end, core -> a front end or nbd).

With --objects DIR (a meson build's libzl.a.p), the same checks on the
call graph instead: a module depends on another when its object file uses
a symbol the other's defines (nm), which catches calls that no include
shows (an extern declared by hand, a callback registered upward).

Exit status 0 when there is none of these, 1 otherwise.

    scripts/include-graph.py [--dot] [--src DIR] [--objects DIR]
"""
import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# lower number = lower layer; an include may only go to the same or a lower
# layer (front ends and nbd are peers at the top, both above core)
LAYER = {"util": 0, "backend": 1, "core": 2, "nbd": 3, "smapi": 4, "cli": 4,
         "ganeti": 4, ".": 5}


def module_of(path):
    return os.path.splitext(path)[0]


def folder_of(mod):
    d = os.path.dirname(mod)
    return d if d else "."


def layer_of(folder):
    return LAYER.get(folder.split("/")[0], 5)


def scan(src):
    deps = defaultdict(set)  # module -> modules it includes
    for dp, _, fns in os.walk(src):
        for fn in fns:
            if not fn.endswith((".c", ".h")):
                continue
            path = os.path.relpath(os.path.join(dp, fn), src)
            mod = module_of(path)
            deps[mod]
            with open(os.path.join(dp, fn), errors="replace") as f:
                for inc in INCLUDE.findall(f.read()):
                    cand = inc if os.path.exists(os.path.join(src, inc)) else \
                        os.path.normpath(os.path.join(os.path.dirname(path), inc))
                    if os.path.exists(os.path.join(src, cand)):
                        target = module_of(cand)
                        if target != mod:
                            deps[mod].add(target)
    return deps


def scan_objects(src, objdir):
    """module -> modules whose symbols its object file uses."""
    by_obj = {}
    for dp, _, fns in os.walk(src):
        for fn in fns:
            if fn.endswith(".c"):
                rel = os.path.relpath(os.path.join(dp, fn), os.path.join(src, ".."))
                by_obj[rel.replace("/", "_") + ".o"] = module_of(
                    os.path.relpath(os.path.join(dp, fn), src))
    defined, used = {}, defaultdict(set)
    for fn in os.listdir(objdir):
        mod = by_obj.get(fn)
        if not mod:
            continue
        out = subprocess.run(["nm", os.path.join(objdir, fn)], check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                used[mod].add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBR":
                defined[parts[2]] = mod
    deps = defaultdict(set)
    for mod, syms in used.items():
        deps[mod]
        for sym in syms:
            t = defined.get(sym)
            if t and t != mod:
                deps[mod].add(t)
    for mod in defined.values():
        deps[mod]
    return deps


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--dot", action="store_true", help="print the folder graph as dot")
    ap.add_argument("--objects", help="check the call graph of these object files instead")
    a = ap.parse_args()
    deps = scan_objects(a.src, a.objects) if a.objects else scan(a.src)
    what = "calls" if a.objects else "includes"

    folders = defaultdict(set)
    within = defaultdict(lambda: defaultdict(set))
    up = []
    for m, ts in deps.items():
        fm = folder_of(m)
        for t in ts:
            ft = folder_of(t)
            if ft != fm:
                folders[fm].add(ft)
                if layer_of(ft) > layer_of(fm):
                    up.append(f"{m} -> {t}")
            else:
                within[fm][m].add(t)
        folders[fm]

    if a.dot:
        print("digraph folders {")
        for f, ts in sorted(folders.items()):
            for t in sorted(ts):
                print(f'  "{f}" -> "{t}";')
        print("}")

    bad = 0
    for c in cycles(folders):
        print("cycle between folders: " + " <-> ".join(c))
        bad += 1
    for f, g in sorted(within.items()):
        for c in cycles(g):
            print(f"cycle inside {f}: " + " <-> ".join(c))
            bad += 1
    for u in sorted(up):
        print(f"{what[:-1]} up the layers: " + u)
        bad += 1
    print(f"{len(deps)} modules, {sum(len(t) for t in deps.values())} {what} edges, "
          f"{len(folders)} folders: {bad} problem{'s' if bad != 1 else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
