"""Where kb keeps its state and how it reads its configuration: one ``.kb`` per repository, at its root, that git
ignores; configuration errors blamed on the file the value came from; misspelt keys warned about, not ignored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.config import Config, load_config
from kb.errors import KbError
from kb.store import GITIGNORE, SqliteStore, find_db


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with a subfolder, and kb told nothing about where its KB is."""
    monkeypatch.delenv("KB_DB", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    return tmp_path


def _git_status(repo: Path) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    return sorted(line[3:] for line in out.splitlines())


def test_the_kb_is_created_at_the_repository_root_from_a_subfolder(repo: Path) -> None:
    assert find_db(repo / "pkg" / "sub") == repo / ".kb" / "kb.sqlite"
    with SqliteStore(find_db(repo / "pkg" / "sub"), seed=False):
        pass
    assert (repo / ".kb" / "kb.sqlite").is_file() and not (repo / "pkg" / "sub" / ".kb").exists()


def test_a_kb_above_the_repository_is_not_used_but_one_inside_it_is(repo: Path) -> None:
    outer = repo / "outer"
    inner = outer / "project"
    (inner / "src").mkdir(parents=True)
    (outer / ".kb").mkdir()
    (inner / ".git").write_text("gitdir: elsewhere\n")  # a worktree or submodule: .git is a file
    assert find_db(inner / "src") == inner / ".kb" / "kb.sqlite"
    (inner / "src" / ".kb").mkdir()  # an existing KB in a subfolder is still found first (nothing is lost)
    assert find_db(inner / "src") == inner / "src" / ".kb" / "kb.sqlite"


def test_a_new_kb_folder_is_git_ignored_but_config_and_rule_packs_stay_committable(repo: Path) -> None:
    with SqliteStore(find_db(repo / "pkg"), seed=False):
        pass
    assert (repo / ".kb" / ".gitignore").read_text() == GITIGNORE
    assert _git_status(repo) == []  # kb.sqlite, its WAL files and the .gitignore itself: nothing shows
    (repo / ".kb" / "config.toml").write_text("min_confidence = 0.9\n")
    (repo / ".kb" / "rules").mkdir()
    (repo / ".kb" / "rules" / "mine.yaml").write_text("pack: mine\n")
    (repo / ".kb" / "rules" / "other.yml").write_text("pack: other\n")
    (repo / ".kb" / "journal").mkdir()
    (repo / ".kb" / "journal" / "1.json").write_text("{}")
    assert _git_status(repo) == [".kb/config.toml", ".kb/rules/mine.yaml", ".kb/rules/other.yml"]


def test_a_gitignore_someone_wrote_is_left_alone(repo: Path) -> None:
    (repo / ".kb").mkdir()
    (repo / ".kb" / ".gitignore").write_text("kb.sqlite\n")
    with SqliteStore(repo / ".kb" / "kb.sqlite", seed=False):
        pass
    assert (repo / ".kb" / ".gitignore").read_text() == "kb.sqlite\n"


def test_a_kb_outside_a_kb_folder_gets_no_gitignore(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "elsewhere" / "kb.sqlite", seed=False):
        pass
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir() if p.name.startswith(".")) == []


def test_kb_run_from_a_subfolder_records_into_the_repository_kb(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path a user takes: a command run from a subfolder, the KB at the root, git clean."""
    monkeypatch.chdir(repo / "pkg" / "sub")
    result = CliRunner().invoke(cli, ["rules", "lint", str(Path(__file__).parent.parent / "kb" / "packs" /
                                                          "test-behaviour.yaml")])
    assert result.exit_code == 0, result.output
    assert (repo / ".kb" / "kb.sqlite").is_file() and not (repo / "pkg" / "sub" / ".kb").exists()
    assert _git_status(repo) == []


# ---------------------------------------------------------------- configuration


def _pyproject(root: Path, body: str) -> Path:
    path = root / "pyproject.toml"
    path.write_text(f"[project]\nname = 'demo'\n\n[tool.kb]\n{body}")
    return path


@pytest.mark.parametrize(("body", "message"), [
    ("min_confidence = 2\n", "min_confidence must be a number between 0 and 1"),
    ("min_confidence = true\n", "min_confidence must be a number between 0 and 1"),
    ("allow_auto_fix = 'no'\n", "allow_auto_fix must be true or false"),
    ("test_command = 'pytest -x'\n", "test_command must be a list of strings"),
])
def test_a_bad_value_in_pyproject_is_blamed_on_pyproject(tmp_path: Path, body: str, message: str) -> None:
    path = _pyproject(tmp_path, body)
    (tmp_path / ".kb").mkdir()
    (tmp_path / ".kb" / "config.toml").write_text("# kb's settings\n")  # present, but not the culprit
    with pytest.raises(KbError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{path} [tool.kb]: {message}"


def test_a_bad_value_in_config_toml_is_blamed_on_config_toml(tmp_path: Path) -> None:
    _pyproject(tmp_path, "min_confidence = 0.5\n")
    (tmp_path / ".kb").mkdir()
    (tmp_path / ".kb" / "config.toml").write_text("min_confidence = -1\n")
    with pytest.raises(KbError, match=r"^.*/\.kb/config\.toml: min_confidence must be"):
        load_config(tmp_path)


def test_config_toml_wins_key_by_key(tmp_path: Path) -> None:
    _pyproject(tmp_path, "min_confidence = 0.5\ntest_command = ['tox']\n")
    (tmp_path / ".kb").mkdir()
    (tmp_path / ".kb" / "config.toml").write_text("min_confidence = 0.9\n")
    assert load_config(tmp_path) == Config(True, 0.9, ("tox",))


def test_the_configuration_is_found_from_a_subfolder_up_to_the_repository_root(tmp_path: Path) -> None:
    """kb fix --root pkg/sub (or run there) obeys the project's settings: allow_auto_fix = false is not skipped.
    The repository is a folder of tmp_path, so the file above it stays inside this test's own folder (one
    in the folder the worker's tests share would become the rootdir of other tests' pytest runs)."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[tool.kb]\nmin_confidence = 0.1\n")  # above the repository
    (repo / ".kb").mkdir()
    (repo / ".kb" / "config.toml").write_text("allow_auto_fix = false\n")
    _pyproject(repo, "min_confidence = 0.5\n")
    sub = repo / "pkg" / "sub"
    assert load_config(sub) == Config(False, 0.5, ()) == load_config(repo)
    _pyproject(repo / "pkg", "test_command = ['tox']\n")  # the nearest pyproject.toml is the one read
    assert load_config(sub) == Config(False, 0.8, ("tox",))
    (repo / ".kb" / "config.toml").unlink()
    (repo / ".git").rename(repo / ".git-gone")  # no repository: the walk stops at the project's .kb folder
    assert load_config(sub) == Config(True, 0.8, ("tox",))


def test_a_tool_kb_that_is_not_a_table_is_an_error_naming_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool]\nkb = 3\n")
    with pytest.raises(KbError, match=r"pyproject\.toml \[tool\.kb\]: must be a table of settings"):
        load_config(tmp_path)


def test_unknown_keys_warn_with_the_file_the_key_and_the_closest_known_key(tmp_path: Path) -> None:
    _pyproject(tmp_path, "min-confidence = 0.5\ncolour = true\n")
    (tmp_path / ".kb").mkdir()
    (tmp_path / ".kb" / "config.toml").write_text("allow_autofix = false\n")
    said: list[str] = []
    assert load_config(tmp_path, warn=said.append) == Config()  # misspelt keys change nothing
    pyproject, config = tmp_path / "pyproject.toml", tmp_path / ".kb" / "config.toml"
    assert said == [f"{pyproject} [tool.kb]: unknown key 'min-confidence' ignored (did you mean 'min_confidence'?)",
                    f"{pyproject} [tool.kb]: unknown key 'colour' ignored",
                    f"{config}: unknown key 'allow_autofix' ignored (did you mean 'allow_auto_fix'?)"]


def test_kb_shows_the_warning_in_one_line_and_the_error_naming_pyproject(tmp_path: Path) -> None:
    """Through ``kb fix`` as a user runs it (the real entry point turns the error into one line, exit 1)."""
    path = _pyproject(tmp_path, "min_confidenze = 0.5\nallow_auto_fix = 1\n")
    result = subprocess.run([sys.executable, "-m", "kb", "fix", "--last", "--root", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kb: warning: {path} [tool.kb]: unknown key 'min_confidenze' ignored (did you mean 'min_confidence'?)",
        f"kb: error: {path} [tool.kb]: allow_auto_fix must be true or false"]


def test_the_journal_makes_kb_with_its_gitignore_too(tmp_path: Path) -> None:
    from kb.journal import Journal

    with Journal(tmp_path).lock():
        pass
    assert (tmp_path / ".kb" / ".gitignore").read_text() == GITIGNORE
