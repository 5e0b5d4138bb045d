#!/usr/bin/env python3
"""Finds pairs of files of one Rust module folder that import each other.

HACKING.md's rule: within a folder (daemon/, ike/, shm/, ...), imports run
one way; no two files use each other. For every folder of every crate's
src/ this reads each .rs file's references to its siblings:

  - in a file other than mod.rs: `super::NAME` (NAME a sibling module, or an
    item of mod.rs: then the edge goes to mod.rs), `use super::*` (mod.rs),
    and `crate::<folder path>::NAME`;
  - in mod.rs: `NAME::` or `self::NAME` for a child module NAME (module
    declarations `mod NAME;` are not imports).

and prints every pair A <-> B with both edges (and the lines). Exit code 1 if
there is one. A mod.rs re-exporting a child (`pub use child::X`) is the
folder's interface, not a use; a parent and its children using each other is
allowed only in the folders of ALLOWED_PARENT_CHILD, with the reason.
Inside an inline `mod tests { ... }`, `super::` names the file itself.
Usage: scripts/check_module_cycles.py [SRC_DIR...] (default: every crate's
src/ in the workspace). Run by scripts/test.sh.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Folders where a parent and its children use each other by design, with why.
# Sibling files importing each other are never allowed.
ALLOWED_PARENT_CHILD = {
    # The crypto backends implement their parent's EspCipher and raw traits,
    # and the parent picks one per SA (Backend::build_one). Splitting the
    # parent would move the code the crypto-backend work is extending.
    "dataplane/src/crypto": "backends implement the parent's traits; the parent picks one",
    "dataplane/src/crypto/mb": "the SIMD kernel implements its parent's cipher",
    # One backend (intel-ipsec-mb) and one kernel (VAES GCM) split by
    # section: the sections share the parent's constants, key type and
    # helpers (`use super::*`), the parent builds from them. Siblings stay
    # independent of each other.
    "dataplane/src/crypto/ipsecmb": "sections of one backend share its constants and helpers",
    "dataplane/src/crypto/mb/vaes512": "sections of one kernel share its key type and helpers",
}


def strip_comments(text):
    """Lines without comments; inside an inline `mod NAME { ... }` (tests),
    one `super::` is dropped: there it names the file itself."""
    out = []
    depth = 0
    inline = []  # brace depths at which inline modules opened
    for line in text.split("\n"):
        if inline:
            line = re.sub(r"\bsuper::", "", line, count=1) if "super::" in line else line
            line = line.replace("use ::*;", "").replace("use *;", "")
        s = line.lstrip()
        if s.startswith("//"):
            out.append("")
            continue
        # drop trailing // comments (good enough: no "//" in our strings' paths)
        i = line.find("//")
        if i >= 0 and '"' not in line[:i]:
            line = line[:i]
        if re.match(r"\s*(pub(\([\w:]+\))?\s+)?mod\s+\w+\s*\{", line):
            inline.append(depth)
        depth += line.count("{") - line.count("}")
        while inline and depth <= inline[-1]:
            inline.pop()
        out.append(line)
    return out


def modules_of(folder):
    """Sibling module names in `folder`: files (minus .rs) and subfolders with mod.rs."""
    names = set()
    for e in os.listdir(folder):
        p = os.path.join(folder, e)
        if e.endswith(".rs") and e != "mod.rs":
            names.add(e[:-3])
        elif os.path.isdir(p) and os.path.exists(os.path.join(p, "mod.rs")):
            names.add(e)
    return names


def crate_path(src, folder):
    rel = os.path.relpath(folder, src)
    return [] if rel == "." else rel.split(os.sep)


def edges_of(src, folder):
    mods = modules_of(folder)
    files = {m: os.path.join(folder, m + ".rs") for m in mods}
    for m in list(files):
        if not os.path.exists(files[m]):
            files[m] = os.path.join(folder, m, "mod.rs")
    parent = os.path.join(folder, "mod.rs")
    is_lib_root = False
    if not os.path.exists(parent):
        for root_name in ("lib.rs", "main.rs"):
            if os.path.exists(os.path.join(folder, root_name)) and folder == src:
                parent = os.path.join(folder, root_name)
                is_lib_root = True
                break
    prefix = "crate::" + "".join(p + "::" for p in crate_path(src, folder))
    edges = {}

    def add(a, b, line):
        if a != b:
            edges.setdefault((a, b), []).append(line.strip())

    for m, path in files.items():
        if not os.path.exists(path):
            continue
        for line in strip_comments(open(path, encoding="utf-8").read()):
            for name in re.findall(r"\bsuper::(\w+)", line):
                add(m, name if name in mods else "mod", line)
            if re.search(r"\bsuper::\*", line) or re.search(r"\bsuper::\{", line):
                add(m, "mod", line)
        # Absolute paths from anywhere in the child's subtree.
        sub = os.path.dirname(path) if path.endswith("mod.rs") else None
        paths = [path]
        if sub:
            for d, _, fs in os.walk(sub):
                paths += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
        for q in set(paths):
            for line in strip_comments(open(q, encoding="utf-8").read()):
                for name in re.findall(re.escape(prefix) + r"(\w+)", line):
                    if name in mods:
                        add(m, name, line)
                    elif not is_lib_root:
                        add(m, "mod", line)
    if os.path.exists(parent):
        for line in strip_comments(open(parent, encoding="utf-8").read()):
            if re.match(r"\s*(pub(\([\w:]+\))?\s+)?mod\s+\w+\s*;", line):
                continue
            # `pub use child::...` re-exports are the folder's interface, not a use.
            if re.match(r"\s*pub(\([\w:]+\))?\s+use\s", line):
                continue
            for name in mods:
                if re.search(r"(?<![\w:])(self::)?" + re.escape(name) + r"::", line):
                    add("mod", name, line)
    return edges


def check(src):
    bad = []
    for folder, dirs, _ in os.walk(src):
        edges = edges_of(src, folder)
        rel = os.path.relpath(folder, ROOT)
        for (a, b), lines in sorted(edges.items()):
            if a < b and (b, a) in edges:
                if "mod" in (a, b) and rel in ALLOWED_PARENT_CHILD:
                    continue
                bad.append(
                    f"{rel}: {a} <-> {b}\n"
                    f"    {a} -> {b}: {lines[0]}\n"
                    f"    {b} -> {a}: {edges[(b, a)][0]}"
                )
    return bad


def main():
    srcs = [os.path.abspath(a) for a in sys.argv[1:]]
    if not srcs:
        for crate in sorted(os.listdir(ROOT)):
            s = os.path.join(ROOT, crate, "src")
            if os.path.isfile(os.path.join(ROOT, crate, "Cargo.toml")) and os.path.isdir(s):
                srcs.append(s)
    bad = []
    for s in srcs:
        bad.extend(check(s))
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} pair(s) of files import each other")
        return 1
    print("module folders: no two files import each other")
    return 0


if __name__ == "__main__":
    sys.exit(main())
