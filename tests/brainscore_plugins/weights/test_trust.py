"""A weights file is trusted (its sha256 recorded) only once it loaded strictly into its architecture: bad mirror
files and bad cache files or downloads never poison the record, and the genuine file loads afterwards. Forged
checkpoints of a tiny network; downloads from a local HTTP server on the loopback interface."""
import dataclasses
import hashlib
import http.server
import threading

import pytest
import torch

from brainscore_plugins import catalog, errors, factory, forge, settings

ID = "spvvs_resnetflexfilters-d-1-0-0-0_ecoset_full_seed-0.ep1"
OTHER = "spvvs_resnetflexfilters-d-1-0-0-0_imagenet_full_seed-0.ep1"  # the same layers, 1000 classes instead of 565


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """The bytes of the forged published file of ``ID`` and of ``OTHER``."""
    folder = tmp_path_factory.mktemp("forged")
    return {name: forge.forge_into_mirror(name, folder).read_bytes() for name in (ID, OTHER)}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.MIRROR, str(tmp_path / "mirror"))
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    entry = catalog.resolve(ID)
    return tmp_path / "mirror" / entry.weights_file, tmp_path / "cache" / f"{entry.weights_file}.sha256"


def _loads() -> bool:
    """``ID`` loads, with exactly the forged weights."""
    stored = forge.forged_state_dict(catalog.resolve(ID))
    model = factory.create_model(ID, progress=False)
    return all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("bad", ["zero-byte", "truncated", "another model"])
def test_a_bad_mirror_file_is_not_recorded_and_the_genuine_file_then_loads(genuine, env, bad):
    mirrored, record = env
    mirrored.parent.mkdir(parents=True)
    mirrored.write_bytes({"zero-byte": b"", "truncated": genuine[ID][:len(genuine[ID]) // 2],
                          "another model": genuine[OTHER]}[bad])
    with pytest.raises(errors.CheckpointInvalidError, match=f"The mirrored file {mirrored} is not a checkpoint of "
                                                            f"{ID} .*replace it"):
        factory.create_model(ID, progress=False)
    assert mirrored.exists() and not record.exists()  # the user's file is left; nothing is trusted
    mirrored.write_bytes(genuine[ID])
    assert _loads()
    assert record.read_text().strip() == hashlib.sha256(genuine[ID]).hexdigest()


def test_weights_path_records_only_a_file_that_loads(genuine, env):
    mirrored, record = env
    mirrored.parent.mkdir(parents=True)
    mirrored.write_bytes(b"")
    with pytest.raises(errors.CheckpointInvalidError, match="not a checkpoint of"):
        factory.weights_path(catalog.resolve(ID), progress=False)
    assert not record.exists()
    mirrored.write_bytes(genuine[ID])
    assert factory.weights_path(catalog.resolve(ID), progress=False) == mirrored and record.exists()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` at any path; ``cut`` ends it early; ``no_length`` sends no Content-Length."""
    body, cut, no_length = b"", None, False

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        self.send_response(200)
        if not cls.no_length:
            self.send_header("Content-Length", str(len(cls.body)))
        self.end_headers()
        self.wfile.write(cls.body[:cls.cut])


@pytest.fixture
def served(genuine, env, monkeypatch):
    """``ID``'s weights downloaded from a local server (no mirror)."""
    monkeypatch.delenv(settings.MIRROR)
    _Handler.body, _Handler.cut, _Handler.no_length = genuine[ID], None, False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    entry = dataclasses.replace(catalog.resolve(ID), url=f"http://127.0.0.1:{httpd.server_address[1]}/ep1.pt")
    resolve = catalog.resolve
    monkeypatch.setattr(catalog, "resolve", lambda name: entry if name == ID else resolve(name))
    yield settings.cache_dir() / entry.weights_file
    httpd.shutdown()
    httpd.server_close()


def test_a_bad_cached_file_is_removed_and_the_next_call_downloads_the_genuine_one(genuine, env, served):
    _, record = env
    served.parent.mkdir(parents=True)
    served.write_bytes(genuine[ID][:1000])  # e.g. left by an interrupted copy
    with pytest.raises(errors.CheckpointInvalidError,
                       match=f"{served} in the cache is not a checkpoint of {ID} .*it was removed, run again"):
        factory.create_model(ID, progress=False)
    assert not served.exists() and not record.exists()
    assert _loads() and served.read_bytes() == genuine[ID]
    assert record.read_text().strip() == hashlib.sha256(genuine[ID]).hexdigest()


def test_a_cut_download_without_length_is_removed_and_the_genuine_one_then_loads(genuine, env, served):
    _, record = env
    _Handler.no_length, _Handler.cut = True, len(genuine[ID]) // 2
    with pytest.raises(errors.CheckpointInvalidError, match=r"\.partial in the cache is not a checkpoint of .*removed"):
        factory.create_model(ID, progress=False)
    assert sorted(p.name for p in served.parent.iterdir()) == [f"{served.name}.lock"] and not record.exists()
    _Handler.cut = None
    assert _loads() and served.read_bytes() == genuine[ID] and record.exists()
