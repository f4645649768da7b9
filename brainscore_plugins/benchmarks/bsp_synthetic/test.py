"""Brain-Score style plugin test for the synthetic benchmark."""
import numpy as np
import pytest

import brainscore_vision
from brainscore_plugins import bridge, settings


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")  # ceilings are cached by identifier otherwise
    bridge.link()


@pytest.mark.parametrize("region", ["V1", "V2", "V4", "IT"])
def test_benchmark(region):
    benchmark = brainscore_vision.load_benchmark(f"bsp-synthetic.{region}-pls")
    assert benchmark.identifier == f"bsp-synthetic.{region}-pls" and benchmark.region == region
    ceiling = benchmark.ceiling
    assert 0.5 < float(ceiling) <= 1  # planted signal with moderate noise: reliable responses
    assembly = benchmark._assembly
    assert set(assembly.dims) == {"presentation", "neuroid"}  # static, like MajajHong2015
    assert len(np.unique(assembly["stimulus_id"])) == assembly.sizes["presentation"]  # repetitions averaged


def test_behavioral_benchmark():
    """Rajalingham2018's format: 1-D trials with sample/distractor objects, fitting images with labels."""
    benchmark = brainscore_vision.load_benchmark("bsp-synthetic-i2n")
    assert benchmark.identifier == "bsp-synthetic-i2n"
    trials, fitting = benchmark._assembly, benchmark._fitting_stimuli
    assert trials.dims == ("presentation",) and set(np.unique(trials.values)) <= set(fitting["image_label"])
    assert (trials["truth"].values == trials["sample_obj"].values).all()
    assert (trials["sample_obj"].values != trials["dist_obj"].values).all()
    assert 0.3 < float(benchmark.ceiling) <= 1  # the observer's choices are reliable across split halves
