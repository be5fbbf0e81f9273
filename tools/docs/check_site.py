"""Check a built documentation site the way a reader sees it.

Usage: ``python tools/docs/check_site.py SITE_DIR [--screenshots DIR]``

The site is served on a loopback port and then:

1. LinkChecker crawls it from the home page and reports every internal link
   that does not resolve (external links are not fetched: the check runs
   offline);
2. headless Chromium (Debian's ``chromium``, driven by Playwright) opens every
   page and fails it on a JavaScript error, a failed or external request, an
   image that does not load, a missing title or heading, or source text left
   unrendered (a Sphinx role, a mkdocstrings directive, a snippet marker);
3. every link to an anchor (``page/#section``) must find that anchor in the
   page as the browser rendered it;
4. the search box is used once, to show that the search index loads;
5. the main pages are saved as screenshots.

Exits with status 1 and one line per problem if anything fails.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Chromium with nothing that reaches the network on its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Pages saved as screenshots, by their path in the site.
MAIN_PAGES = ["", "quickstart/", "api/allocate/", "performance/", "faq/"]
# Source syntax that must never reach a reader.
UNRENDERED = re.compile(r":(?:func|class|meth|attr|data|mod|exc):`|^::: |--8<--", re.MULTILINE)
LINKCHECKER_CONFIG = """\
[output]
log=text
[text]
parts=realurl,result,warning,parenturl,line,outro
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serve files without logging every request."""

    def log_message(self, format: str, *args: object) -> None:
        """Stay silent; failures are reported by the checks."""


class Server(http.server.ThreadingHTTPServer):
    """A file server that ignores clients hanging up early (the browser does)."""

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore dropped connections; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on a free loopback port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_paths(site: Path) -> list[str]:
    """URL paths of every HTML page of the site, the 404 page excepted."""
    paths = []
    for page in sorted(site.rglob("*.html")):
        relative = page.relative_to(site).as_posix()
        if relative == "404.html":
            continue
        paths.append(relative.removesuffix("index.html"))
    return paths


def check_links(base: str) -> list[str]:
    """Broken links and anchors found by LinkChecker, one line each."""
    linkchecker = shutil.which("linkchecker")
    if linkchecker is None:
        return ["linkchecker is not installed (pip install linkchecker)"]
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "linkcheckerrc"
        config.write_text(LINKCHECKER_CONFIG, encoding="utf-8")
        config.chmod(0o644)  # LinkChecker drops root privileges before reading it
        Path(scratch).chmod(0o755)
        done = subprocess.run(
            [linkchecker, "--config", str(config), "--no-status", "--threads", "4", base],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if "link" in line and "found" in line]
    print("linkchecker:", *(summary or ["(no summary)"]))
    if done.returncode == 0:
        return []
    return [f"linkchecker exited with {done.returncode}:\n{done.stdout}{done.stderr}"]


def check_pages(base: str, paths: list[str], chromium: str, shots: Path | None) -> list[str]:
    """Open every page in headless Chromium; one line per problem found."""
    from playwright.sync_api import Error, Route, sync_playwright

    problems: list[str] = []
    host = base.rstrip("/")
    anchors: dict[str, set[str]] = {}  # page path -> ids in it
    links: dict[str, set[str]] = {}  # page path -> internal links with a fragment

    def local_only(route: Route) -> None:
        if route.request.url.startswith(host):
            route.continue_()
        else:
            problems.append(f"{current}: external request to {route.request.url}")
            route.abort()

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        context.route("**/*", local_only)
        page = context.new_page()
        current = ""
        page.on("pageerror", lambda error: problems.append(f"{current}: JavaScript error {error}"))
        page.on("console", lambda message: message.type == "error" and problems.append(
            f"{current}: console error {message.text}"))  # fmt: skip
        page.on("requestfailed", lambda request: problems.append(
            f"{current}: request failed {request.url} ({request.failure})"))  # fmt: skip
        page.on("response", lambda response: response.status >= 400 and problems.append(
            f"{current}: HTTP {response.status} for {response.url}"))  # fmt: skip
        for path in paths:
            current = path or "/"
            try:
                page.goto(base + path, wait_until="networkidle")
            except Error as error:
                problems.append(f"{current}: did not load ({error})")
                continue
            problems.extend(f"{current}: {problem}" for problem in inspect_page(page))
            anchors[path] = set(page.evaluate(
                "() => Array.from(document.querySelectorAll('[id], a[name]'), e => e.id || e.name)"
            ))  # fmt: skip
            links[path] = {
                href.removeprefix(base) for href in page.evaluate(
                    "() => Array.from(document.querySelectorAll('a[href*=\"#\"]'), a => a.href)"
                ) if href.startswith(base)
            }  # fmt: skip
            if shots is not None and path in MAIN_PAGES:
                name = (path.strip("/").replace("/", "-") or "home") + ".png"
                page.screenshot(path=str(shots / name), full_page=True)
        current = "search"
        problems.extend(f"search: {problem}" for problem in check_search(page, base))
        context.close()
    problems.extend(missing_anchors(anchors, links))
    return problems


def missing_anchors(anchors: dict[str, set[str]], links: dict[str, set[str]]) -> list[str]:
    """Find links whose ``#fragment`` names no element of the target page."""
    found = []
    for source, targets in sorted(links.items()):
        for target in sorted(targets):
            path, _, fragment = target.partition("#")
            path = path.removesuffix("index.html")
            if fragment and path in anchors and fragment not in anchors[path]:
                found.append(f"{source or '/'}: link to a missing anchor {target}")
    return found


def inspect_page(page: Page) -> list[str]:
    """List what is wrong with the open page, as a reader would notice it."""
    found = []
    if not page.title().strip():
        found.append("no title")
    if page.locator("article h1").count() == 0:
        found.append("no heading")
    text = page.locator("article").inner_text()
    if len(text) < 200:
        found.append(f"almost no content ({len(text)} characters)")
    if match := UNRENDERED.search(text):
        found.append(f"unrendered source {match.group(0)!r}")
    broken = page.evaluate(
        """() => Array.from(document.querySelectorAll('article img'))
            .filter(img => !(img.complete && img.naturalWidth > 0
                             && img.getBoundingClientRect().width > 0))
            .map(img => img.getAttribute('src'))"""
    )
    found.extend(f"image does not show: {src}" for src in broken)
    return found


def check_search(page: Page, base: str) -> list[str]:
    """Type a query into the search box and expect results."""
    from playwright.sync_api import Error as PlaywrightError

    page.goto(base, wait_until="networkidle")
    search = page.locator("input.md-search__input")
    search.click()
    search.press_sequentially("KnapsackAllocator")  # typed: the search listens to keys
    results = page.locator(".md-search-result__item")
    try:
        results.first.wait_for(timeout=10_000)
    except PlaywrightError:
        return ["no result for 'KnapsackAllocator'"]
    return []


def main(argv: list[str] | None = None) -> int:
    """Run every check; 0 when the site is clean, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("--screenshots", type=Path, help="save the main pages here as PNG")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="Chromium executable (default: chromium on PATH)")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"{args.site} has no index.html; build the site first (mkdocs build)")
    if not Path(args.chromium).is_file():
        parser.error(f"no Chromium at {args.chromium}; install it (apt-get install chromium)")
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    paths = page_paths(args.site)
    with serve(args.site) as base:
        problems = check_links(base)
        problems += check_pages(base, paths, args.chromium, args.screenshots)
    for problem in problems:
        print(f"site check: {problem}", file=sys.stderr)
    where = f"; screenshots in {args.screenshots}" if args.screenshots else ""
    print(f"site check: {len(paths)} pages, {len(problems)} problems{where}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
