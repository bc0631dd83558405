"""The documentation a newcomer reads: a README of at most 200 lines that the docs site uses
as its home page, and a site that MkDocs builds in strict mode (broken links, missing pages
and pages outside the navigation are errors)."""

import subprocess

from conftest import BIN, ENV, REPO


def test_readme_is_short_and_is_the_sites_home_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert (REPO / "docs/index.md").read_text() == readme.replace("(docs/", "("), "run `make docs` (docs/index.md is the README)"
    for section in ("## Two commands", "## What the workflow does", "## Where results land", "## The demo's results"):
        assert section in readme


def test_docs_build_strict(tmp_path):
    p = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")], cwd=REPO, env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "site" / "extending" / "index.html").is_file()
