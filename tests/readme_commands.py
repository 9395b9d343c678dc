#!/usr/bin/env python3
"""Runs README.md and the docs/ pages as a newcomer would, and fails if any
command fails.

It starts the demo with the Quickstart's first command (from the
repository root, as pasted), waits for the banner, runs the commands the
banner prints, then every ```sh block of README.md followed by every
```sh block of the pages in docs/, in one bash session (so `export`s
carry over: the pages use the walk-through's PATH and HAMCTL_URL), and
stops the server with SIGTERM.

The order is fixed: README.md first, then the pages in the order of
DOCS_PAGES below (the order of the README's "Where to read next" list),
each page's blocks top to bottom. A block may rely on what an earlier
block, in the README or in an earlier page, left in the demo. A page in
docs/ that DOCS_PAGES does not name, or a name with no page, fails the
test, so a new page is never left out silently.

Which blocks run is decided by an HTML comment on the line before a block,
with the same rules on every page:

  <!-- readme-test: quickstart -->   the two set-up commands (README.md
                                     only, exactly once): the first one
                                     starts the demo; the second (the
                                     tests) is what .ci/run runs anyway
  <!-- readme-test: skip (why) -->    not run here; the reason is required
  <!-- readme-test: needs TOOL -->    run, and TOOL must be on PATH

Every other ```sh block runs. So a new command in the README or a page is
tested by default, and the documentation cannot drift from what works.

The demo gets a fresh data dir (RELEASE_MANAGER_DATA_DIR), so an earlier
demo's state is neither used nor touched; ports 8080 and 8081 must be free.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = "README.md"
# The docs/ pages whose blocks run after the README's, in this order: the
# order of the README's "Where to read next" list, which must match it.
DOCS_PAGES = [
    "docs/hamctl.md",
    "docs/config-repository.md",
    "docs/controllers.md",
    "docs/running.md",
    "docs/api.md",
    "docs/migration.md",
    "docs/operations.md",
    "docs/performance.md",
    "docs/architecture.md",
    "docs/development.md",
]
DIRECTIVE = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")
# The first build compiles everything: allow for a slow machine.
START_TIMEOUT = 40 * 60
COMMANDS_TIMEOUT = 10 * 60
PORTS = (8080, 8081)


class Block:
    def __init__(self, page, line, directive, code):
        self.page = page
        self.line = line
        self.directive = directive
        self.code = code

    def commands(self):
        """Shell commands of the block: lines joined at trailing
        backslashes, comments and blank lines dropped."""
        commands, current = [], ""
        for raw in self.code.splitlines():
            current += raw.rstrip()
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip() and not current.strip().startswith("#"):
                commands.append(current.strip())
            current = ""
        return commands


def fail(message):
    print(f"README test FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def where(block):
    return f"{block.page} line {block.line}"


def pages():
    """README.md, then DOCS_PAGES; fails unless DOCS_PAGES names exactly
    the pages in docs/, in the order of the README's "Where to read next"
    list."""
    docs = os.path.join(REPO, "docs")
    present = sorted(
        f"docs/{name}" for name in (os.listdir(docs) if os.path.isdir(docs) else [])
        if name.endswith(".md")
    )
    missing = sorted(set(present) - set(DOCS_PAGES))
    if missing:
        fail(f"add {', '.join(missing)} to DOCS_PAGES in tests/readme_commands.py")
    gone = sorted(set(DOCS_PAGES) - set(present))
    if gone:
        fail(f"DOCS_PAGES in tests/readme_commands.py names {', '.join(gone)}, which does not exist")
    listed = read_next_links()
    if listed != DOCS_PAGES:
        fail(
            "the README's \"Where to read next\" list and DOCS_PAGES in "
            "tests/readme_commands.py must name the same pages in the same order: "
            f"{listed} vs {DOCS_PAGES}"
        )
    return [README] + DOCS_PAGES


def read_next_links():
    """The docs pages the README's "Where to read next" list links to, in
    its order."""
    text = open(os.path.join(REPO, README), encoding="utf-8").read()
    section = re.search(r"^## Where to read next\n(.*?)(?=^## )", text, re.M | re.S)
    if not section:
        fail("README.md has no \"## Where to read next\" section")
    return re.findall(r"^\s*\d+\. \[[^\]]*\]\((docs/[^)#]+\.md)\)", section.group(1), re.M)


def read_blocks(page):
    lines = open(os.path.join(REPO, page), encoding="utf-8").read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)", lines[i])
        if not fence:
            i += 1
            continue
        start, info = i, fence.group(1)
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if info not in ("sh", "bash", "shell", "console"):
            continue
        directive = None
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0:
            found = DIRECTIVE.search(lines[before])
            if found:
                directive = found.group(1)
        blocks.append(Block(page, start + 1, directive, "\n".join(body) + "\n"))
    return blocks


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def user_environment(data_dir):
    """The environment of a fresh terminal: nothing of hamctl's or
    artifact's set, a committer identity only if git has none."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("HAMCTL_", "ARTIFACT_", "RELEASE_MANAGER_")):
            del env[name]
    env["RELEASE_MANAGER_DATA_DIR"] = data_dir
    env.pop("NO_COLOR", None)
    for key, variable, value in (
        ("user.name", "GIT_COMMITTER_NAME", "README Reader"),
        ("user.email", "GIT_COMMITTER_EMAIL", "readme@example.com"),
    ):
        configured = subprocess.run(
            ["git", "config", key], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
        if not configured and not env.get(variable):
            print(f"(no git {key} here: setting {variable} as the README says)")
            env[variable] = value
    return env


def start_demo(command, env):
    """Runs the Quickstart's first command; returns the process and the
    commands its banner prints."""
    print(f"$ {command}", flush=True)
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner, done = [], threading.Event()

    def read():
        in_banner = False
        for line in server.stdout:
            print(f"  | {line}", end="", flush=True)
            if line.startswith("Release manager demo"):
                in_banner = True
            elif in_banner and line.startswith("  "):
                banner.append(line.strip())
            elif in_banner and banner and not line.strip():
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(START_TIMEOUT) or not banner:
        stop(server)
        fail(f"the Quickstart's first command printed no banner ({command!r})")
    return server, banner


def stop(server):
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        fail("the demo did not stop within 60 s of SIGTERM")


def run_script(title, script, env):
    print(f"\n=== {title}", flush=True)
    try:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-x", "-c", script],
            cwd=REPO,
            env=env,
            timeout=COMMANDS_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"{title}: still running after {COMMANDS_TIMEOUT} s"
    if result.returncode != 0:
        return f"{title}: the command traced last above exited {result.returncode}"
    return None


def main():
    read = pages()
    blocks = [block for page in read for block in read_blocks(page)]
    quickstart = [b for b in blocks if b.directive == "quickstart"]
    if len(quickstart) != 1 or quickstart[0].page != README:
        fail(
            "README.md needs exactly one block marked <!-- readme-test: quickstart -->, "
            "and no page another: "
            + (", ".join(where(b) for b in quickstart) or "none found")
        )
    setup = quickstart[0].commands()
    if len(setup) != 2:
        fail(f"the Quickstart block has {len(setup)} commands, not two: {setup}")
    start_command, test_command = (c.split(" #")[0].strip() for c in setup)
    if test_command != "make test":
        fail(f"the Quickstart's second command is {test_command!r}; .ci/run runs `make test`")

    walk, skipped = [], []
    for block in blocks:
        if block.directive == "quickstart":
            continue
        if block.directive is None:
            walk.append(block)
        elif block.directive.startswith("skip"):
            if not re.match(r"skip\s*\(.+\)", block.directive):
                fail(f"{where(block)}: a skipped block must say why: skip (...)")
            skipped.append(block)
        elif block.directive.startswith("needs "):
            tool = block.directive.split()[1]
            if not shutil.which(tool):
                fail(f"{where(block)} needs `{tool}` on PATH (make readme-test installs it)")
            walk.append(block)
        else:
            fail(f"{where(block)}: unknown directive {block.directive!r}")

    for port in PORTS:
        if not port_free(port):
            fail(f"port {port} is in use; the README's demo listens there")

    with tempfile.TemporaryDirectory(prefix="readme-demo-") as data_dir:
        env = user_environment(data_dir)
        server, banner = start_demo(start_command, env)
        failures = []
        try:
            failure = run_script("the commands the demo's banner prints", "\n".join(banner), env)
            if failure:
                failures.append(failure)
            else:
                # `:` is a no-op that bash -x traces, so the output says
                # which page and line a failing command is on.
                script = "".join(f": {where(b)}\n{b.code}" for b in walk)
                failure = run_script(
                    f"{len(walk)} command blocks of README.md and docs/, in order",
                    script,
                    env,
                )
                if failure:
                    failures.append(failure)
        finally:
            code = stop(server)
        if not failures and code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 2):
            failures.append(f"the demo exited {code} after SIGTERM")
    if failures:
        fail("; ".join(failures))
    commands = sum(len(b.commands()) for b in walk) + len(banner) + 1
    print(
        f"\nREADME test ok: {commands} commands ({len(walk)} blocks of {len(read)} pages, "
        f"and the banner) exited 0; {len(skipped)} blocks not run here, each saying why"
    )


if __name__ == "__main__":
    main()
