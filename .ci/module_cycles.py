#!/usr/bin/env python3
"""The layering check CI runs (make layers). Import circles between the top-level modules of one crate's src/ (a folder or a file is one module).
Prints each circle (strongly connected set of 2+ modules, or a module only reachable by going back up)
and the edges that make it. Usage: module_cycles.py CRATE_SRC_DIR [ROOTS...] ; exit 1 when a circle exists."""
import os, re, sys
from collections import defaultdict

src = sys.argv[1]
roots = set(sys.argv[2:] or ["lib", "main"])  # wiring roots: may import anything, nothing imports them
mods = {}
for name in os.listdir(src):
    p = os.path.join(src, name)
    if os.path.isdir(p):
        mods[name] = [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs if f.endswith(".rs")]
    elif name.endswith(".rs"):
        mods[name[:-3]] = [p]

def refs(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)  # unit tests may reach anywhere
    out = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^;]*?)\};", text, flags=re.S):
        depth, cur = 0, ""
        for ch in group:
            if ch == "{": depth += 1
            elif ch == "}": depth -= 1
            if ch == "," and depth == 0:
                out.add(cur.strip().split("::")[0]); cur = ""
            else:
                cur += ch
        if cur.strip(): out.add(cur.strip().split("::")[0])
    return {r.strip() for r in out if r.strip()}

edges = defaultdict(set)
why = defaultdict(set)
for m, files in mods.items():
    if m in roots: continue
    for f in files:
        for r in refs(open(f, encoding="utf-8", errors="replace").read()):
            if r in mods and r != m and r not in roots:
                edges[m].add(r); why[(m, r)].add(os.path.relpath(f, src))

index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in list(mods):
    if v not in index and v not in roots: strong(v)
for comp in sccs:
    print(f"circle of {len(comp)}: {', '.join(comp)}")
    for a in comp:
        for b in sorted(edges[a] & set(comp)):
            print(f"   {a} -> {b}  ({', '.join(sorted(why[(a, b)]))})")
total = sum(len(v) for v in edges.values())
print(f"{len([m for m in mods if m not in roots])} modules, {total} edges, {len(sccs)} circles")
sys.exit(1 if sccs else 0)
