#!/usr/bin/env python3
"""Runs the shell snippets of a Markdown document against a live service and checks each answer against
what the document says. Used by scripts/doc-snippets.sh on docs/API.md; the rules are in docs/TESTING.md:

- every ```sh block runs, top to bottom, in one shell session (variables carry from block to block); the
  line `B=http://127.0.0.1:8080` points at the service under test instead;
- every `curl` command ends with a comment giving the status it answers: `curl ...   # 201`;
- an `*Answer*` line after a block (before the next ```sh block) introduces the ```json block that the
  block's output must match: same keys, same values, where
    * `...` inside a string matches any text, `"...": "..."` in an object allows more keys, and a last
      array element `"..."` allows more elements (those shown must appear in that order);
    * UUIDs, RFC 3339 times, `tks_` session tokens and 32-digit hex ids match any value of that shape,
      also inside a longer string;
    * numbers under the keys in VARYING_NUMBERS match any number.

  python3 scripts/lib/doc_snippets.py BASE_URL FILE.md
"""
import json
import os
import re
import subprocess
import sys
import tempfile

DOC_BASE_LINE = "B=http://127.0.0.1:8080"
VARYING_NUMBERS = {"ageSeconds", "expires_at", "id", "nextBefore"}
SHAPES = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"tks_[A-Za-z0-9_-]{43}"), "<session token>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<hex id>"),
]
FENCE = re.compile(r"^```(\S*)\s*(.*)$")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
# The shell around every block: curl reports each status on stderr (the body stays on stdout, for pipes).
PRELUDE = r"""set -o pipefail
curl() { command curl --write-out '%{stderr}@@status %{http_code}\n' "$@"; }
"""


class Block:
    def __init__(self, lang, info, line, text):
        self.lang, self.info, self.line, self.text = lang, info, line, text
        self.answer = None


def blocks(path):
    """The ```sh blocks of the file, each with its *Answer* block, if any."""
    out, current, pending_answer = [], None, False
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            if lines[i].strip() == "*Answer*" and out:
                pending_answer = True
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        block = Block(m.group(1), m.group(2), start, "\n".join(body))
        if block.lang == "sh":
            out.append(block)
            pending_answer = False
        elif block.lang == "json" and pending_answer:
            if out[-1].answer is not None:
                raise SystemExit(f"{path}:{start}: a second *Answer* for the block at line {out[-1].line}")
            out[-1].answer = block
            pending_answer = False
    return out


def commands(text):
    """The block's commands as (code, comment) pairs: lines joined across backslash continuations and
    quoted newlines, comments split off outside quotes (enough shell syntax for documented calls)."""
    out, code, comment, quote, escaped = [], "", "", None, False
    for line in text.split("\n"):
        i = 0
        while i < len(line):
            ch = line[i]
            if escaped:
                escaped = False
            elif ch == "\\" and quote != "'":
                if i == len(line) - 1 and quote is None:
                    break  # continuation
                escaped = True
            elif quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1].isspace()):
                comment += line[i + 1 :].strip() + " "
                break
            code += ch
            i += 1
        if quote or line.rstrip().endswith("\\"):
            code += " "
            continue
        if code.strip() or comment.strip():
            out.append((code.strip(), comment.strip()))
        code, comment = "", ""
    return out


def expected_statuses(path, block):
    statuses = []
    for code, comment in commands(block.text):
        n = len(re.findall(r"(?:^|[\s;|&($])curl\s", code))
        if n == 0:
            continue
        m = re.match(r"(\d{3})\b", comment)
        if n > 1 or m is None:
            raise SystemExit(
                f"{path}:{block.line}: each curl goes on its own line and ends with its status, "
                f"like `curl ...   # 200`:\n  {code}"
            )
        statuses.append(int(m.group(1)))
    return statuses


def shape(s):
    for rx, name in SHAPES:
        s = rx.sub(name, s)
    return s


def match(doc, got, where="$"):
    """None when `got` is what `doc` shows, else where and how they differ."""
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return f"{where}: expected an object, got {json.dumps(got)}"
        open_ended = "..." in doc
        keys = [k for k in doc if k != "..."]
        missing = [k for k in keys if k not in got]
        extra = [k for k in got if k not in doc]
        if missing:
            return f"{where}: missing {missing}"
        if extra and not open_ended:
            return f'{where}: not in the document: {extra} (add them, or "...": "..." to allow more)'
        for k in keys:
            if k in VARYING_NUMBERS and isinstance(doc[k], (int, float)) and isinstance(got[k], (int, float)):
                continue
            diff = match(doc[k], got[k], f"{where}.{k}")
            if diff:
                return diff
        return None
    if isinstance(doc, list):
        if not isinstance(got, list):
            return f"{where}: expected an array, got {json.dumps(got)}"
        if doc and doc[-1] == "...":
            rest = iter(enumerate(got))
            for i, d in enumerate(doc[:-1]):
                if not any(match(d, g) is None for _, g in rest):
                    return f"{where}[{i}]: no element matching {json.dumps(d)} (in this order)"
            return None
        if len(doc) != len(got):
            return f"{where}: {len(got)} elements, the document shows {len(doc)}"
        for i, (d, g) in enumerate(zip(doc, got)):
            diff = match(d, g, f"{where}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(doc, str) and isinstance(got, str):
        pattern = "^" + ".*".join(re.escape(part) for part in shape(doc).split("...")) + "$"
        if re.match(pattern, shape(got), re.S):
            return None
    elif doc == got and type(doc) is type(got):
        return None
    return f"{where}: expected {json.dumps(doc)}, got {json.dumps(got)}"


def run(base, path):
    failures, state = [], tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False).name
    checked = answers = 0
    for block in blocks(path):
        if DOC_BASE_LINE in block.text.split("\n"):
            block.text = block.text.replace(DOC_BASE_LINE, f"B={base}")
        want = expected_statuses(path, block)
        names = sorted({m.group(1) for code, _ in commands(block.text) if (m := ASSIGNMENT.match(code))})
        script = PRELUDE + f". {state}\n" + block.text + "\n"
        if names:
            script += f"declare -p {' '.join(names)} > {state}.new && cat {state}.new >> {state}\n"
        try:
            proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as e:
            proc = subprocess.CompletedProcess(e.cmd, 124, e.stdout or "", "timed out after 60 s")
        got = [int(s) for s in re.findall(r"^@@status (\d{3})$", proc.stderr, re.M)]
        problems = []
        if proc.returncode != 0:
            problems.append(f"exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
        if got != want:
            problems.append(f"statuses {got}, the document says {want}")
        if block.answer is not None and not problems:
            answers += 1
            try:
                doc = json.loads(block.answer.text)
            except json.JSONDecodeError as e:
                problems.append(f"the *Answer* at line {block.answer.line} is not JSON ({e})")
                doc = None
            try:
                actual = json.loads(proc.stdout)
            except json.JSONDecodeError:
                problems.append(f"the answer is not one JSON document: {proc.stdout[:400]!r}")
                doc = None
            if doc is not None:
                diff = match(doc, actual)
                if diff:
                    problems.append(f"answer differs from line {block.answer.line}: {diff}")
                    problems.append(f"the whole answer: {json.dumps(actual)[:2000]}")
        checked += 1
        status = "FAILED" if problems else "ok"
        print(f"{path}:{block.line}: {status}  {block.text.strip().splitlines()[0][:90]}")
        for p in problems:
            print(f"    {p}")
        if problems:
            failures.append(block.line)
    os.unlink(state)
    print(f"\n{checked} blocks run, {answers} answers compared")
    print(f"{checked - len(failures)} passed, {len(failures)} failed")
    return not failures


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(0 if run(sys.argv[1], sys.argv[2]) else 1)
