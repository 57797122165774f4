"""The speed tools: the side-by-side variants and the kernel-by-kernel timings and comparison."""

import json

import pytest

from benchmarks import kernels, side_by_side


def test_variant_settings_are_environment_or_options():
    assert side_by_side.parse_variant("xla:--jit-compile,TF_NUM_INTEROP_THREADS=1") == (
        "xla",
        ["--jit-compile", "TF_NUM_INTEROP_THREADS=1"],
    )
    for bad in ("xla", "xla:", ":A=1", "xla:jit"):
        with pytest.raises(ValueError, match="NAME:SETTING"):
            side_by_side.parse_variant(bad)


def test_kernels_time_every_layer_and_compare(tmp_path):
    rows = kernels.measure(batch_size=2, data_format="channels_last", repeats=1, inner=1)
    assert [r["layer"] for r in rows] == [layer[0] for layer in kernels.LAYERS]
    assert all(r["forward_ms"] > 0 and r["backward_ms"] > 0 for r in rows)
    slow = [{**r, "forward_ms": 2 * r["forward_ms"], "backward_ms": 4 * r["backward_ms"]} for r in rows]
    for name, layers in (("a", rows), ("b", slow)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"backend": name, "layers": layers}))
    table = kernels.compare(tmp_path / "a.json", tmp_path / "b.json").splitlines()
    assert len(table) == 2 + len(rows) + 1
    cells = [c.strip() for c in table[-1].strip("|").split("|")]
    assert cells[0] == "all" and cells[3] == "0.50" and cells[6] == "0.25"  # A's time over B's
