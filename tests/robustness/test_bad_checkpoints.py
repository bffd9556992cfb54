"""Bad weights: another model's checkpoint, a corrupt one, and a pickle carrying code (refused:
every torch.load in the lab uses ``weights_only=True``). One sentence each."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from lab.core.errors import LabError
from lab.models import build

from conftest import ROOT, WEIGHTS, need

pytestmark = pytest.mark.robustness


def _place(src: Path, weights: Path, model: str) -> Path:
    p = weights / "jamendo" / model / "best_model.pth"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(src)  # the user copied the wrong file into place
    return p


def test_another_models_checkpoint_does_not_fit(tmp_path):
    src = need(WEIGHTS / "jamendo" / "crnn" / "best_model.pth")
    p = _place(src, tmp_path, "hcnn")
    with pytest.raises(LabError) as err:
        build("hcnn", weights_dir=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {p} does not fit HarmonicCNN: ") and "missing keys" in msg and "\n" not in msg


def test_another_models_checkpoint_under_a_verified_name_is_refused_by_its_hash(tmp_path):
    src = need(WEIGHTS / "jamendo" / "crnn" / "best_model.pth")
    _place(src, tmp_path, "musicnn")
    with pytest.raises(LabError, match=r"does not match the official musicnn weights trained on jamendo \(SHA-256 differs\); re-download"):
        build("musicnn", weights_dir=tmp_path)


def test_truncated_checkpoint_of_an_unverified_model_is_one_sentence(tmp_path):
    src = need(WEIGHTS / "jamendo" / "crnn" / "best_model.pth")
    p = tmp_path / "jamendo" / "sample" / "best_model.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(LabError, match=r"cannot be read as a torch state dict \(\w+\)$"):
        build("sample", weights_dir=tmp_path)


class _Payload:
    """Unpickling this runs ``os.system`` (the classic malicious checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_with_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "jamendo" / "attention" / "best_model.pth"
    p.parent.mkdir(parents=True)
    torch.save({"layer.weight": torch.zeros(1), "evil": _Payload(marker)}, p)
    with pytest.raises(LabError, match="cannot be read as a torch state dict"):
        build("attention", weights_dir=tmp_path)
    assert not marker.exists()


def test_every_torch_load_in_the_lab_passes_weights_only_true():
    calls = []
    for f in (ROOT / "lab").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((f"{f.relative_to(ROOT)}:{node.lineno}", ok))
    assert calls and all(ok for _, ok in calls), calls
