"""The listening map: previews, a self-contained page, and the page in a real headless browser."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from lab.core.errors import LabError
from lab.datasets import audio
from lab.studies.clustering.listen_map import MapPoint, build_page, encode_preview, write_listen_map, write_previews

from browser import artifact_dir, browser_page, console_errors
from conftest import GTZAN_MINI, need


def _songs(n: int) -> list:
    files = sorted((need(GTZAN_MINI) / "genres").glob("*/*.wav"))
    # two per genre so several colours show up
    by_genre: dict[str, list] = {}
    for f in files:
        by_genre.setdefault(f.parent.name, []).append(f)
    picked = [f for fs in by_genre.values() for f in fs[:2]]
    return picked[:n]


def test_preview_is_ten_seconds_of_small_mp3_from_the_middle():
    f = _songs(1)[0]
    y = audio.load(f, sr=16000)
    data = encode_preview(y)
    back, sr = sf.read(io.BytesIO(data))
    assert sr == 16000 and abs(len(back) / sr - 10.0) < 0.1
    assert len(data) < 60_000  # ~34 kB measured; a page of 1000 songs stays ~35 MB
    with pytest.raises(LabError, match="mono audio"):
        encode_preview(np.zeros((2, 100), dtype=np.float32))


def _page(tmp_path, n=12):
    files = _songs(n)
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(len(files), 2)) * 10
    points = [MapPoint(id=f.stem, file=f.name, genre=f.parent.name, cluster=f"{i % 3} -> {files[i % 3].parent.name}",
                       rogue_score=0.25 * i, rogue=i == 3) for i, f in enumerate(files)]
    # 4 s decoded per song keeps the test quick; the last song's loader fails -> dot without preview
    def load(i):
        if i == len(files) - 1:
            raise LabError(f"{files[i]}: unreadable (simulated)")
        return librosa.load(files[i], sr=16000, offset=5.0, duration=4.0)[0]

    previews, notes = write_previews(tmp_path, load, len(files), keys=[f.name for f in files], cache_dir=tmp_path / "cache", seconds=3)
    assert len(notes) == 1 and previews[-1] is None and all(previews[:-1])
    assert len(list((tmp_path / "cache" / "previews").rglob("*.mp3"))) == len(files) - 1
    return write_listen_map(tmp_path, xy, points, previews, title="test map: 12 gtzan_mini songs"), files


def test_page_is_self_contained_and_rejects_bad_coordinates(tmp_path):
    page, files = _page(tmp_path)
    text = page.read_text()
    assert "<script src=" not in text and "cdn.bokeh.org" not in text  # JavaScript embedded: opens offline
    assert page.stat().st_size < 2_000_000
    assert all(f.name in text for f in files)
    with pytest.raises(LabError, match="NaN or inf"):
        build_page(np.array([[0.0, np.nan]]), [MapPoint("a", "a.wav", "g", "0", 0.0)], [None], title="t")


@pytest.mark.slow
def test_map_in_headless_chromium_shows_every_song_and_plays_a_click(tmp_path):
    page_path, files = _page(tmp_path)
    n = len(files)
    shots = artifact_dir()
    with browser_page() as page:
        errors = console_errors(page)
        page.goto(page_path.as_uri())
        page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle", timeout=30_000)
        assert page.evaluate("Bokeh.documents[0].get_model_by_name('songs').data_source.data.x.length") == n
        # every dot is painted where the page says it is: the screenshot is not background there
        from PIL import Image

        png = page.screenshot(path=str(shots / "listen_map.png"))
        img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        pix = [page.evaluate(f"window.listenMap.pixelOf({i})") for i in range(n)]
        painted = [bool((np.abs(img[round(y), round(x)] - 255).sum()) > 60) for x, y in pix]
        assert sum(painted) == n, f"{n - sum(painted)} of {n} dots not drawn at their position"
        # hover shows the file; click plays its preview
        x, y = pix[4]
        page.mouse.move(x, y)
        page.get_by_text(files[4].name, exact=True).first.wait_for(timeout=5_000)
        page.mouse.click(x, y)
        page.wait_for_function("() => { const a = document.getElementById('player'); return !a.paused && a.currentTime > 0.1; }",
                               timeout=10_000)
        assert page.evaluate("document.getElementById('player').src").endswith("previews/00004.mp3")
        assert files[4].name in page.inner_text("#now")
        page.screenshot(path=str(shots / "listen_map_playing.png"))
        # the song without a preview says so instead of failing
        x, y = pix[n - 1]
        page.mouse.click(x, y)
        page.wait_for_function("document.getElementById('now').textContent.startsWith('no preview')", timeout=5_000)
    assert errors == []
