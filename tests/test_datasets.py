import socket
import time

import pytest

from idiff_lib.data import datasets
from idiff_lib.cli import main
from idiff_lib.core.errors import DataError, OfflineError


def test_fetch_raim_fails_at_once_without_network(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    t0 = time.monotonic()
    with pytest.raises(OfflineError, match=r"no network.*fetch-raim.*narthchin/RAIM-PIQA"):
        datasets.fetch_raim(tmp_path)
    assert time.monotonic() - t0 < 2
    assert not list(tmp_path.iterdir())


def test_cli_reports_offline_fetch_as_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert main(["data", "fetch-raim", "--out", str(tmp_path)]) == 2
    assert "no network" in capsys.readouterr().err


def test_split_file_lists_what_the_folder_holds(tmp_path):
    (tmp_path / "mine.jsonl").write_text("")
    with pytest.raises(DataError, match=r"train_sft.jsonl: split file not found \(the folder holds mine.jsonl\)"):
        datasets.split_file(tmp_path, "train")


def test_data_check_reports_bad_samples(pair_folder, capsys):
    (pair_folder / "images" / "p_001_merged_c1.jpg").unlink()
    assert main(["data", "check", str(pair_folder / "pairs.jsonl"), "--skip-bad"]) == 1
    out = capsys.readouterr().out
    assert "2 good pair(s), 1 bad" in out and "p_001" in out and "image not found" in out
    assert main(["data", "check", str(pair_folder / "pairs.jsonl")]) == 2
