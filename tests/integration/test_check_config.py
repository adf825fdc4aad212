# SPDX-License-Identifier: MIT
"""notifyqd --check-config (-t), like nginx -t: the exact location of every
error, exit 1; exit 0 on valid files."""
import subprocess

import pytest

from conftest import DATA, NOTIFYQD, REPO

BAD = [pytest.param(p, id=p.stem) for p in sorted((DATA / "bad").glob("*.yaml"))]
GOOD = [pytest.param(p, id=p.stem) for p in sorted((DATA / "good").glob("*.yaml"))]


def check(path, *args, flag="--check-config"):
    return subprocess.run([str(NOTIFYQD), flag, "-c", str(path), *args], capture_output=True,
                          text=True, timeout=10)


def test_there_are_fixtures():
    assert len(BAD) >= 5 and GOOD


@pytest.mark.parametrize("path", BAD)
def test_bad_config_names_file_line_column(path):
    want = path.with_suffix(".expected").read_text().strip().replace("{path}", str(path))
    r = check(path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert want in r.stdout + r.stderr


@pytest.mark.parametrize("path", GOOD)
@pytest.mark.parametrize("flag", ["--check-config", "-t"])
def test_good_config_passes(path, flag):
    r = check(path, flag=flag)
    assert r.returncode == 0, r.stdout + r.stderr


def test_short_flag_fails_too():
    r = check(BAD[0].values[0], flag="-t")
    assert r.returncode == 1


def test_shipped_config_is_valid(tmp_path):
    r = check(REPO / "etc" / "notifyq.yaml", "--set", "state_dir=%s" % tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_set_override_is_validated_like_the_file():
    r = check(DATA / "good" / "minimal.yaml", "--set", "queues.email.concurrency=0")
    assert r.returncode == 1
    assert "queues.email.concurrency" in r.stdout + r.stderr
