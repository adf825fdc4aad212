# SPDX-License-Identifier: MIT
"""A real PostgreSQL for the delivery log's tests: Debian's postgresql
(scripts/setup installs it), a throwaway cluster made with initdb and run
with pg_ctl on a unix socket in a temp dir and a private port (never 5432),
no TCP. initdb refuses to run as root, and the suite runs as root in CI:
the cluster then belongs to `nobody`, in a temp dir it owns (runuser).

`postgres_server` is session-scoped; each test takes its own database
(`pg_database`), so tests never see one another's rows. Tests may stop and
start the server (an outage) but must leave it running."""
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import wait_for


def pg_bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not found:
        pytest.skip("PostgreSQL server binaries missing: run scripts/setup")
    return found[-1]


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nq-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = 55400 + os.getpid() % 500
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            shutil.chown(self.dir, user="nobody")
            os.chmod(self.dir, 0o755)
        self._run(pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, *args, check=True):
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)

    def start(self):
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                  "-o", "-k %s -p %d -c listen_addresses='' -c fsync=off" % (self.dir, self.port),
                  "start")

    def stop(self, mode="fast"):
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")

    def running(self):
        return self._run(pg_bin("pg_ctl"), "-D", self.data, "status", check=False).returncode == 0

    def dsn(self, db="postgres"):
        return "host=%s port=%d user=postgres dbname=%s" % (self.dir, self.port, db)

    def psql(self, sql, db="postgres", check=True):
        """Runs sql; returns the rows as lists of strings (unaligned, |)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                            "-d", self.dsn(db), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("psql failed: %s" % r.stderr)
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def create_db(self):
        name = "t_" + uuid.uuid4().hex[:10]
        self.psql("CREATE DATABASE %s" % name)
        return name

    def close(self):
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    pg = Postgres()
    yield pg
    pg.close()


@pytest.fixture
def pg_database(postgres_server):
    """A fresh database; the server is running again after the test."""
    name = postgres_server.create_db()
    yield name
    if not postgres_server.running():
        postgres_server.start()
    wait_for(lambda: postgres_server.psql("SELECT 1", check=False) == [["1"]], timeout=30)
