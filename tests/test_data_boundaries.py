"""The data folder's boundary: symbolic links that lead out of it, and pair ids that are not plain names.

Both are refused by the reader with the file, the line and the fix, and through ``idiff data check``
with exit 2, one line and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from answer_fixtures import make_pairs_file

from idiff_lib.core.errors import DataError
from idiff_lib.data.pairs import check_pair_id, read_pairs

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symbolic links as on POSIX")


def _idiff(*args, env=None):
    return subprocess.run([sys.executable, "-m", "idiff_lib.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


@pytest.fixture
def data(tmp_path):
    """A two-pair data folder and its records (two folders deep: images are also looked for two folders up)."""
    pf = make_pairs_file(tmp_path / "a" / "b" / "d", n=2, side=64)
    return pf, [json.loads(line) for line in pf.read_text().splitlines()]


def _write(pf, rows):
    pf.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_symlink_out_of_the_data_folder_is_refused(tmp_path, data):
    pf, _ = data
    outside = tmp_path / "elsewhere" / "secret.png"
    outside.parent.mkdir()
    (pf.parent / "images" / "s_00001_merged_c0.png").rename(outside)
    (pf.parent / "images" / "s_00001_merged_c0.png").symlink_to(outside)
    with pytest.raises(DataError) as err:
        read_pairs(pf)
    msg = str(err.value)
    assert str(pf) in msg and "line 2" in msg and "symbolic link" in msg and "--allow-outside-root" in msg
    res = _idiff("data", "check", pf)
    said = res.stdout + res.stderr  # data check lists each bad sample, then one error line
    assert res.returncode == 2 and "symbolic link" in said and "line 2" in said and "Traceback" not in said
    # the user's explicit permission still works
    assert len(read_pairs(pf, allow_outside_root=True)) == 2


def test_a_symlink_to_etc_passwd_is_never_opened(data):
    pf, rows = data
    link = pf.parent / "images" / "x_merged_c0.png"
    link.symlink_to("/etc/passwd")
    _write(pf, rows + [dict(rows[0], images=["images/x_merged_c0.png", rows[0]["images"][1]])])
    with pytest.raises(DataError, match="symbolic link to /etc/passwd"):
        read_pairs(pf)


def test_a_symlink_inside_the_data_folder_is_fine(data):
    pf, rows = data
    real = pf.parent / "images" / "s_00001_merged_c0.png"
    real.rename(pf.parent / "images" / "real.png")
    real.symlink_to("real.png")
    assert [p.id for p in read_pairs(pf, require_images=True)] == [r["images"][0].split("/")[1][:7] for r in rows]


@pytest.mark.parametrize("bad", ["../../escape", "a/b", "..", ".hidden", "-flag", "a\\b", "tab\there", "x" * 129, ""])
def test_an_explicit_id_must_be_a_plain_name(data, bad):
    pf, rows = data
    _write(pf, [rows[0], dict(rows[1], id=bad)])
    if bad == "":
        assert read_pairs(pf)[1].id != ""  # an empty id falls back to the image name
        return
    with pytest.raises(DataError) as err:
        read_pairs(pf)
    assert "line 2" in str(err.value) and "not a plain name" in str(err.value)


def test_data_check_refuses_an_escaping_id_in_one_line(data):
    pf, rows = data
    _write(pf, [rows[0], dict(rows[1], id="../../escape")])
    res = _idiff("data", "check", pf)
    said = res.stdout + res.stderr
    assert res.returncode == 2 and "'../../escape'" in said and "line 2" in said and "Traceback" not in said


@pytest.mark.parametrize("good", ["p_000", "s_test_017", "shot-3.v2", "IMG_0042+crop", "photo@2x", "Ålesund_01"])
def test_plain_ids_pass(good):
    assert check_pair_id(good) == good
