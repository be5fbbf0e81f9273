"""Every code example in docs/ and the README runs and shows what the page says it shows.

Each page's blocks run in order, in one namespace per page and in a
temporary folder of their own (holding a copy of ``examples/``), so a page
reads like a session a user could type:

* ```` ```python ```` blocks with ``>>>`` prompts run under doctest, and what
  they print must match (``...`` matches anything); other python blocks are
  executed.
* ```` ```console ```` blocks: each ``$ command`` runs in a shell and its
  output (stdout and stderr) must match the lines below it, ``...`` as above.
* ```` ```bash ```` blocks are not run (they install things), but every
  ``knapsack-alloc`` command in them must be accepted by the CLI's parser.
* A python block right after ``<!-- docs-test: not run, REASON -->`` needs
  something the core tests lack (a framework, a GPU): it is compiled and its
  ``knapsack_alloc`` imports are checked, then it is reported as skipped
  with REASON.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from knapsack_alloc.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
NOT_RUN = re.compile(r"<!--\s*docs-test:\s*not run,\s*(?P<reason>.+?)\s*-->")
CHECKED = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason, for blocks marked not run

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, indented ones included."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence) and lines[end].strip().strip(fence[0]) == ""
        ):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{i + 1}: code block is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[i + 1:end]]  # fmt: skip
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        reason = marker["reason"] if marker else None
        blocks.append(Block(page, i + 1, opening["lang"].lower(), "\n".join(body) + "\n", reason))
        i = end + 1
    return blocks


PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
BLOCKS = [block for page in PAGES for block in parse_blocks(page)]
RUN = [b for b in BLOCKS if b.lang in ("python", "py", "pycon", "console")]
SHELL = [b for b in BLOCKS if b.lang in ("bash", "sh", "shell")]


@dataclass
class PageSession:
    """The namespace and folder one page's blocks share, run in order."""

    folder: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    done: dict[int, str | None] = field(default_factory=dict)  # line -> failure or None


SESSIONS: dict[Path, PageSession] = {}


@pytest.fixture
def session_of(tmp_path_factory, monkeypatch):
    def get(page: Path) -> PageSession:
        if page not in SESSIONS:
            folder = tmp_path_factory.mktemp(page.stem)
            shutil.copytree(ROOT / "examples", folder / "examples")
            SESSIONS[page] = PageSession(folder)
        session = SESSIONS[page]
        monkeypatch.chdir(session.folder)
        return session

    return get


def run_python(block: Block, namespace: dict[str, Any]) -> str | None:
    """Run one python block; the failure report, or None."""
    if ">>>" not in block.code:
        padded = "\n" * block.line + block.code  # tracebacks show the page's line numbers
        exec(compile(padded, str(block.page), "exec"), namespace)
        return None
    test = doctest.DocTestParser().get_doctest(
        block.code, namespace, block.name, str(block.page), block.line
    )
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=CHECKED)
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest ran on a copy; later blocks see its names
    return "".join(report) if runner.failures else None


def run_console(block: Block, folder: Path) -> str | None:
    """Run each ``$ command`` of a console block; the failure report, or None."""
    commands: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    assert commands, f"{block.name}: console block without a '$ ' command"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    checker = doctest.OutputChecker()
    for command, expected_lines in commands:
        done = subprocess.run(command, shell=True, cwd=folder, env=env, text=True, timeout=300,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        expected = "\n".join(expected_lines).strip() + "\n"
        got = done.stdout.strip() + "\n"
        if done.returncode != 0 or not checker.check_output(expected, got, CHECKED):
            example = doctest.Example(command, expected)
            return (f"$ {command} exited with {done.returncode}\n"
                    + checker.output_difference(example, got, CHECKED))  # fmt: skip
    return None


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.name)
def test_example_runs(block, session_of):
    session = session_of(block.page)
    if block.not_run is not None:
        check_not_run(block)
        pytest.skip(f"not run: {block.not_run} (compiled, knapsack_alloc imports checked)")
    for earlier in RUN:
        if earlier.page != block.page or earlier.line >= block.line:
            continue
        if earlier.line not in session.done and earlier.not_run is None:
            session.done[earlier.line] = run_block(earlier, session)
        if session.done.get(earlier.line):
            pytest.skip(f"the block at line {earlier.line} of this page failed")
    failure = session.done[block.line] = run_block(block, session)
    if failure:
        pytest.fail(failure, pytrace=False)


def run_block(block: Block, session: PageSession) -> str | None:
    """Run one block; the failure report (a mismatch or a traceback), or None."""
    try:
        if block.lang == "console":
            return run_console(block, session.folder)
        return run_python(block, session.namespace)
    except Exception:
        return f"{block.name} raised:\n{traceback.format_exc()}"


def check_not_run(block: Block) -> None:
    """A block that cannot run here still compiles and imports what exists."""
    assert block.lang in ("python", "py"), f"{block.name}: only python blocks can be 'not run'"
    tree = ast.parse(doctest.script_from_examples(block.code) if ">>>" in block.code
                     else block.code, filename=block.name)  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("knapsack_alloc"):
            module = importlib.import_module(node.module or "")
            exported = set(getattr(module, "__all__", ())) | set(vars(module))
            missing = [alias.name for alias in node.names if alias.name not in exported]
            assert not missing, f"{block.name}: {node.module} has no {missing}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("knapsack_alloc"):
                    importlib.import_module(alias.name)


def command_lines(code: str) -> list[list[str]]:
    """The simple commands of a shell snippet, split into words as a shell would.

    Redirections (``> out.csv``, ``2>&1``) end a command's words.
    """
    commands: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        words: list[str] = []
        commands.append(words)
        redirected = False
        for token in shlex.shlex(line, posix=True, punctuation_chars=";&|<>"):
            if token in (";", "&&", "||", "|", "&"):
                words, redirected = [], False
                commands.append(words)
            elif set(token) <= set("<>&"):
                redirected = True
            elif not redirected:
                words.append(token)
    return [words for words in commands if words]


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.name)
def test_shell_commands_parse(block):
    for words in command_lines(block.code):
        if words[:3] == ["python", "-m", "knapsack_alloc"]:
            words = ["knapsack-alloc", *words[3:]]
        if words[0] != "knapsack-alloc":
            continue
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as stop:
            assert stop.code == 0, f"{block.name}: the CLI rejects {shlex.join(words)!r}"


def test_every_page_is_checked():
    # The parser must see the blocks a reader sees: every fence is recognised.
    assert len(RUN) >= 10
    languages = {block.lang for block in BLOCKS}
    unknown = languages - {"python", "py", "pycon", "console", "bash", "sh", "shell", "text", ""}
    assert not unknown, f"code blocks in unhandled languages: {sorted(unknown)}"


def test_fences_are_parsed_like_markdown(tmp_path):
    source = tmp_path / "probe.md"
    source.write_text(
        "text\n\n<!-- docs-test: not run, needs a GPU -->\n```python\nx = 1\n```\n\n"
        "1. item\n\n    ```console\n    $ echo hi\n    hi\n    ```\n",
        encoding="utf-8",
    )
    blocks = parse_blocks(source)
    assert [(b.line, b.lang, b.code, b.not_run) for b in blocks] == [
        (4, "python", "x = 1\n", "needs a GPU"),
        (10, "console", "$ echo hi\nhi\n", None),
    ]


def test_console_output_is_compared(tmp_path):
    block = Block(DOCS / "probe.md", 1, "console", "$ echo hello\ngoodbye\n", None)
    report = run_console(block, tmp_path)
    assert report is not None and "goodbye" in report and "hello" in report
    assert run_console(Block(DOCS / "probe.md", 1, "console", "$ echo hi\n...\n", None),
                       tmp_path) is None  # fmt: skip


def test_doctest_output_is_compared():
    wrong = Block(DOCS / "probe.md", 1, "python", ">>> 1 + 1\n3\n", None)
    assert "Expected:" in (run_python(wrong, {}) or "")
    right = Block(DOCS / "probe.md", 1, "python", ">>> 1 + 1\n2\n", None)
    assert run_python(right, {}) is None


def test_bad_cli_commands_are_caught():
    block = Block(DOCS / "probe.md", 1, "bash", "knapsack-alloc allocate --no-such-flag x\n", None)
    with pytest.raises(AssertionError, match="rejects"):
        test_shell_commands_parse(block)


def test_shell_snippets_split_like_a_shell():
    snippet = (
        'pip install -e ".[all]" && knapsack-alloc allocate a.csv --budget 8  # note\n'
        "python -c \"print('a; b')\" 2>&1 | tail -n 1\n"
        "knapsack-alloc bench \\\n  --quick > out.txt\n"
    )
    assert command_lines(snippet) == [
        ["pip", "install", "-e", ".[all]"],
        ["knapsack-alloc", "allocate", "a.csv", "--budget", "8"],
        ["python", "-c", "print('a; b')", "2"],
        ["tail", "-n", "1"],
        ["knapsack-alloc", "bench", "--quick"],
    ]
