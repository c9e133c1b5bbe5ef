"""The command line: exit codes, JSON documents, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from synchestra.cli import main

SOURCES = textwrap.dedent(
    """
    from synchestra import HTTPFailure, NotConfigured

    async def profile(ctx):
        await ctx.upsert("profile", [{"id": ctx.target.key, "name": ctx.target.name}], key="id")

    async def flaky(ctx):
        if ctx.target.key == "dot:2":
            raise HTTPFailure(404, "example")
        await ctx.upsert("thing", [{"id": 1}], key="id")

    async def keyless(ctx):
        raise NotConfigured("not configured: EXAMPLE_KEY is not set")
    """
)

CONFIG = textwrap.dedent(
    """
    [database]
    url = "sqlite:///cli.db"

    [[sources]]
    name = "profile"
    connector = "clisources:profile"
    per_target = true
    priority = 2

    [[sources]]
    name = "flaky"
    connector = "clisources:flaky"
    per_target = true

    [[sources]]
    name = "keyless"
    connector = "clisources:keyless"
    """
)


class Cli:
    def __init__(
        self, folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.folder = folder
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "argv", ["synchestra", *args])
        with pytest.raises(SystemExit) as done:
            main()
        captured = self.capsys.readouterr()
        code = done.value.code
        return (code if isinstance(code, int) else 0), captured.out, captured.err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code in (0, 1), err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    (tmp_path / "clisources.py").write_text(SOURCES)
    (tmp_path / "synchestra.toml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # -c defaults to ./synchestra.toml
    return Cli(tmp_path, capsys, monkeypatch)


def test_targets_add_import_list_remove(cli: Cli) -> None:
    assert cli("targets", "add", "dot:1", "--name", "ACME", "--attr", "state=TX")[0] == 0
    (cli.folder / "fleet.csv").write_text("key,name,state\ndot:2,Blue,VA\ndot:3,Cascade,WA\n")
    assert cli("targets", "import", "fleet.csv")[0] == 0
    listing = cli.json("targets", "list")
    assert listing == {
        "targets": [
            {"key": "dot:1", "name": "ACME", "attrs": {"state": "TX"}},
            {"key": "dot:2", "name": "Blue", "attrs": {"state": "VA"}},
            {"key": "dot:3", "name": "Cascade", "attrs": {"state": "WA"}},
        ]
    }
    assert cli("targets", "remove", "dot:3")[0] == 0
    assert [t["key"] for t in cli.json("targets", "list")["targets"]] == ["dot:1", "dot:2"]
    code, _, err = cli("targets", "remove", "dot:3")
    assert (code, err.strip()) == (2, "synchestra: error: unknown target 'dot:3'")


def test_sync_json_summary_and_exit_code(cli: Cli) -> None:
    cli("targets", "add", "dot:1", "--name", "ACME")
    cli("targets", "add", "dot:2", "--name", "Blue")
    code, out, _ = cli("sync", "--json")
    summary = json.loads(out)
    assert code == 1
    assert (summary["total"], summary["succeeded"], summary["failed"], summary["skipped"]) == (
        3,
        1,
        1,
        1,
    )
    assert summary["errors"] == [
        {
            "target": "dot:2",
            "name": "Blue",
            "errors": [{"source": "flaky", "error": "HTTP 404 from example"}],
        }
    ]
    states = {(r["source"], r["target"]): r["state"] for r in summary["runs"]}
    assert states == {
        ("profile", "dot:1"): "succeeded",
        ("profile", "dot:2"): "succeeded",
        ("flaky", "dot:1"): "succeeded",
        ("flaky", "dot:2"): "failed",
        ("keyless", None): "skipped",
    }
    keyless = next(r for r in summary["runs"] if r["source"] == "keyless")
    assert keyless["error"] == "not configured: EXAMPLE_KEY is not set"
    assert set(summary["runs"][0]) >= {
        "id",
        "source",
        "target",
        "state",
        "started_at",
        "finished_at",
        "attempts",
        "error",
        "result",
    }
    ok = cli.json("sync", "profile", "--target", "dot:1")
    assert (ok["total"], ok["succeeded"]) == (1, 1)
    assert ok["runs"][0]["result"] == {"created": 0, "updated": 0, "unchanged": 1, "deleted": 0}
    assert cli("sync", "profile", "--target", "dot:1")[0] == 0


def test_status_runs_and_records(cli: Cli) -> None:
    cli("targets", "add", "dot:2", "--name", "Blue")
    cli("sync", "--json")
    status = cli.json("status")
    assert set(status) == {"sources", "health", "eta"}
    assert (status["eta"]["runs_left"], status["eta"]["seconds"]) == (0, 0.0)  # all done
    by_name = {row["source"]: row for row in status["sources"]}
    assert by_name["flaky"]["status"] == "error"
    assert by_name["flaky"]["error"] == "HTTP 404 from example"
    assert by_name["profile"]["status"] == "completed"
    assert status["health"]["sources"]["keyless"]["state"] == "skipped"
    target = cli.json("status", "--target", "dot:2")
    assert target["success"] is False
    assert target["errors"][0]["source"] == "flaky"
    assert target["sources"]["profile"]["state"] == "succeeded"
    failed = cli.json("runs", "--state", "failed")["runs"]
    assert [(r["source"], r["target"]) for r in failed] == [("flaky", "dot:2")]
    records = cli.json("records", "profile")
    assert records["next_cursor"] is None
    (record,) = records["records"]
    assert record["data"] == {"id": "dot:2", "name": "Blue"}
    assert set(record) == {
        "kind",
        "key",
        "target",
        "source",
        "data",
        "first_seen",
        "last_seen",
        "changed_at",
        "deleted_at",
    }


def test_records_limit_and_cursor(cli: Cli) -> None:
    for i in range(5):
        cli("targets", "add", f"dot:{i + 10}")
    cli("sync", "profile", "--json")
    first = cli.json("records", "profile", "--limit", "2")
    second = cli.json("records", "profile", "--limit", "2", "--cursor", first["next_cursor"])
    third = cli.json("records", "profile", "--limit", "2", "--cursor", second["next_cursor"])
    keys = [r["key"] for page in (first, second, third) for r in page["records"]]
    assert sorted(keys) == [f"dot:{i + 10}" for i in range(5)]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--mode", "sideways"], "invalid mode 'sideways'"),
        (["sync", "nosuch"], "unknown source 'nosuch'"),
        (["sync", "--target", "dot:404"], "unknown target 'dot:404'"),
        (["targets", "add", "1' OR '1'='1"], "invalid target key"),
        (["runs", "--state", "dreaming"], "invalid state 'dreaming'"),
        (["records", "profile", "--cursor", "!!"], "invalid cursor"),
        (["records", "profile", "--changed-since", "yesterday"], "invalid time 'yesterday'"),
        (["targets", "import", "missing.csv"], "missing.csv: cannot read"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli: Cli, args: list[str], message: str) -> None:
    code, _, err = cli(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_config_names_file_and_key(cli: Cli) -> None:
    (cli.folder / "bad.toml").write_text(
        '[[sources]]\nname = "x"\nconnector = "a:b"\npriority = "high"\n'
    )
    code, _, err = cli("check", "-c", "bad.toml")
    assert code == 2
    assert "bad.toml" in err and "sources[0].priority" in err
    assert "Traceback" not in err


def test_check_resolves_connectors(cli: Cli) -> None:
    code, out, _ = cli("check")
    assert code == 0 and "3 sources" in out
    (cli.folder / "ghost.toml").write_text(
        '[[sources]]\nname = "x"\nconnector = "no_such_module:run"\n'
    )
    code, _, err = cli("check", "-c", "ghost.toml")
    assert code == 2 and "cannot import 'no_such_module'" in err


def test_usage_error_exits_2(cli: Cli) -> None:
    assert cli("sync", "--no-such-flag")[0] == 2


def _snapshot(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to tell whether a command wrote anything."""
    with sqlite3.connect(database) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names}


def test_read_only_commands_change_nothing(cli: Cli) -> None:
    """Not even recovery: a run a dead process left running stays so until a worker looks."""
    assert cli("targets", "add", "dot:1")[0] == 0
    cli.json("sync", "profile")
    database = cli.folder / "cli.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE runs SET state = 'running', owner = 'ghost:1:dead'")
    with (cli.folder / "synchestra.toml").open("a") as config:  # a writer would list it
        config.write('\n[[sources]]\nname = "later"\nconnector = "clisources:profile"\n')
    before = _snapshot(database)
    for command in (
        ["status"],
        ["status", "--target", "dot:1"],
        ["runs"],
        ["records", "profile"],
        ["targets", "list"],
        ["workers"],
    ):
        code, _, err = cli(*command, "--json")
        assert code == 0, (command, err)
    assert cli("check")[0] == 0
    assert _snapshot(database) == before
    assert before["workers"] == []


def test_workers_lists_nothing_when_no_process_runs(cli: Cli) -> None:
    assert cli.json("workers") == {"workers": []}
    code, out, _ = cli("workers")
    assert code == 0 and "workers" in out
