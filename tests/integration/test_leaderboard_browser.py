"""The leaderboard page in a real browser (headless Chromium): every submission is a row, and a click
on a column header sorts the table by it, both ways. Skipped, with the reason, where no browser exists
(`.ci/run` installs Debian's chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SITE, SUBMISSIONS = ROOT / "leaderboard" / "site", ROOT / "leaderboard" / "submissions"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium here: `apt-get install chromium` (.ci/run does)"
)

# Appended to a copy of the page: clicks a header, records the column's sort keys after each click.
PROBE = """
<script>
const table = document.querySelector("table.board");
const heads = [...table.tHead.rows[0].cells];
const col = heads.findIndex(th => th.textContent.startsWith(%s));
const keys = () => [...table.tBodies[0].rows].map(tr => tr.children[col].dataset.sort);
const seen = {before: keys()};
heads[col].click(); seen.first = keys(); seen.first_dir = heads[col].dataset.dir;
heads[col].click(); seen.second = keys(); seen.second_dir = heads[col].dataset.dir;
const out = document.createElement("pre"); out.id = "probe"; out.textContent = JSON.stringify(seen);
document.body.appendChild(out);
</script>
"""


def rendered_dom(page: Path) -> str:
    done = subprocess.run(
        [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_page_shows_every_submission(tmp_path) -> None:
    names = {json.loads(p.read_text())["name"] for p in SUBMISSIONS.glob("*.json")}
    assert len(names) >= 5
    dom = rendered_dom(SITE / "index.html")
    rows = re.findall(r"<tr><td class=\"num\" data-sort=\"\d+\">\d+</td><td data-sort=\"([^\"]*)\"", dom)
    assert sorted(rows) == sorted(names)


@pytest.mark.parametrize("column", ["aligned toxicity", "submission"])
def test_a_click_sorts_by_the_column(column, tmp_path) -> None:
    page = tmp_path / "index.html"
    html = (SITE / "index.html").read_text()
    page.write_text(html.replace("</body>", PROBE % json.dumps(column) + "</body>"))
    dom = rendered_dom(page)
    found = json.loads(
        re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S).group(1).replace("&quot;", '"')
    )

    def order(keys: list[str]) -> list:
        present = [k for k in keys if k != ""]
        return (
            [float(k) for k in present] if all(re.fullmatch(r"-?[\d.e+-]+", k) for k in present) else present
        )

    assert found["first_dir"] == "asc" and found["second_dir"] == "desc"
    first, second = order(found["first"]), order(found["second"])
    assert first == sorted(first) and second == sorted(second, reverse=True)
    assert sorted(found["before"]) == sorted(found["first"]) and len(found["before"]) >= 5
    assert found["first"][-1] != "" or found["first"].count("") == len(found["first"]) - len(first)


# Appended to a copy of the page: once every image has loaded, records each one's decoded size.
IMAGES = """
<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre"); out.id = "images";
  out.textContent = JSON.stringify([...document.images].map(i => [i.getAttribute("src"), i.naturalWidth]));
  document.body.appendChild(out);
});
</script>
"""


def test_the_pareto_plot_is_shown(tmp_path) -> None:
    for png in SITE.glob("pareto-*.png"):
        shutil.copy(png, tmp_path / png.name)
    page = tmp_path / "index.html"
    page.write_text((SITE / "index.html").read_text().replace("</body>", IMAGES + "</body>"))
    dom = rendered_dom(page)
    images = json.loads(
        re.search(r'<pre id="images">(.*?)</pre>', dom, flags=re.S).group(1).replace("&quot;", '"')
    )
    assert images and all(src.startswith("pareto-") and width > 100 for src, width in images), images
