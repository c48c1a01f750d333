"""The demo athlete end to end: real FIT files, the normal import, plans week by week, progress.

Behaviour only (the limiter model may be retrained): the demo's limiter is found, ``progress``
calls it improving, the plan says time moves on, and the dry-run e-mail carries both charts.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path

import pytest
from garmin_fit_sdk import Decoder, Stream

from connectors.fit import FALLBACK, decode_fit
from planner import demo
from planner.delivery.activityfit import encode_activity
from planner.schema import Col
from tests.conftest import CliResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("index", [0, 23, 29])  # intervals with laps; the treadmill; no strap
def test_fit_activity_round_trip(index: int) -> None:
    run = demo.season()[index]
    item = demo.simulate_demo_run(run)
    data = encode_activity(item)
    assert data == encode_activity(demo.simulate_demo_run(run))  # deterministic by seed
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []  # the SDK's own decoder accepts it (CRC, definitions)
    assert messages["session_mesgs"][0]["sport"] == "running"
    for decoder in ("auto", FALLBACK):
        decoded = decode_fit(data, decoder=decoder)
        (read,) = decoded.items
        activity, stream = read.activity, read.stream
        assert activity.start_utc == item.activity.start_utc
        assert activity.sub_sport == item.activity.sub_sport
        assert len(activity.laps) == len(item.activity.laps)
        assert activity.height_m == pytest.approx(item.activity.height_m, abs=0.01)
        assert set(activity.dynamics) == set(item.activity.dynamics)
        frame = item.stream.to_frame()
        got = stream.values[Col.CADENCE_SPM.value]
        want = frame[Col.CADENCE_SPM.value].to_numpy()
        assert got == pytest.approx(want, abs=1.0 / 64)  # 1/128 cycle resolution
        if Col.GCT_BALANCE_LEFT_PCT.value in frame.columns:
            bal = stream.values[Col.GCT_BALANCE_LEFT_PCT.value]
            want = frame[Col.GCT_BALANCE_LEFT_PCT.value].to_numpy()
            assert bal == pytest.approx(want, abs=0.006, nan_ok=True)
    if not run.dynamics:
        assert item.activity.dynamics == ()


def test_season_design() -> None:
    runs = demo.season()
    assert len({r.week for r in runs}) == demo.WEEKS
    kinds = {r.kind for r in runs}
    assert {"easy", "long", "tempo", "intervals", "trail", "treadmill"} <= kinds
    assert sum(r.kind == "treadmill" for r in runs) == 1
    assert sum(not r.dynamics for r in runs) == 1
    before = {demo.balance_pts(w) for w in range(demo.PLAN_START_WEEK)}
    assert before == {demo.BALANCE_START_PTS}
    after = [demo.balance_pts(w) for w in range(demo.PLAN_START_WEEK, demo.WEEKS)]
    assert after == sorted(after, reverse=True)
    assert after[-1] == pytest.approx(demo.BALANCE_END_PTS)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from planner.services.demo import write_season

    folder = tmp_path_factory.mktemp("demo-fit")
    write_season(folder)
    return folder


def test_season_files_import_through_stridewise_import(
    season: Path, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("import", season, "--athlete", "alex", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["imported"] == len(demo.season())
    assert summary["failed"] == []
    listed = run_cli("activities", "--athlete", "alex", "--json").json()
    assert len(listed) == len(demo.season())
    assert sum(1 for a in listed if not a["dynamics"]) == 1


def test_demo_finds_the_limiter_and_progress_calls_it_improving(
    season: Path, run_cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit_dir = tmp_path / "fit"
    result = run_cli("demo", "--fit-dir", fit_dir)
    assert result.code == 0, result.err
    # Written again from the same seed: the very same files.
    for path in season.rglob("*.fit"):
        assert (fit_dir / path.relative_to(season)).read_bytes() == path.read_bytes()
    assert f"plan for {demo.NEXT_WEEK}" in result.out

    analysis = run_cli("analyze", "--athlete", "demo", "--json").json()
    assert analysis["limiters"][0]["area"] == "strength_balance"

    plot = tmp_path / "progress.png"
    progress = run_cli("progress", "--athlete", "demo", "--json", "--plot", plot).json()
    areas = progress["areas"]
    assert areas["strength_balance"]["verdict"] == "improving"
    assert all(areas[a]["verdict"] != "improving" for a in ("push", "swing", "posture_hip"))
    assert progress["plan_start"] == str(demo.FIRST_WEEK.shift(demo.PLAN_START_WEEK))
    assert plot.read_bytes().startswith(PNG_MAGIC)
    text = run_cli("progress", "--athlete", "demo").out
    assert "Your left–right balance moved from" in text

    week = str(demo.NEXT_WEEK)
    plan = run_cli("plan", "--athlete", "demo", "--week", week, "--format", "json").json()
    assert plan["shift_to"] not in (None, "strength_balance")
    verdicts = {n["area"]: n["verdict"] for n in plan["progress"]}
    assert verdicts["strength_balance"] == "improving"

    monkeypatch.setenv("STRIDEWISE_SMTP_FROM", "coach@example.org")
    out = tmp_path / "eml"
    sent = run_cli("send-weekly", "--athlete", "demo", "--week", week, "--dry-run", "--out", out)
    assert sent.code == 0, sent.err
    (eml,) = out.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert len(images) == 2
    for image in images:
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert "Is the plan working?" in html
    assert "Sources" in html
