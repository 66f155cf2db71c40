"""The README is part of the product: its commands run, and it names every command and setting."""
import argparse
import dataclasses
import json
import re
import shlex


from kb.cli import build_parser, main
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def command_lines() -> list[str]:
    """`kb …` lines of the README's command-line example block."""
    block = README.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith("kb ")]


def subcommands(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(prefix + (name,))
                found += subcommands(sub, prefix + (name,))
    return found


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make run", "make test"]


def test_every_command_is_documented():
    for path in subcommands(build_parser()):
        name = path[-1]
        documented = f"kb {' '.join(path)}" in README or (len(path) == 2 and re.search(
            rf"kb {path[0]} [a-z/]*\b{name}\b", README))
        assert documented, f"README does not mention `kb {' '.join(path)}`"


def test_every_setting_is_documented():
    names = [f.name for f in dataclasses.fields(Settings) if f.name not in ("extra", "home")]
    names += ["office", "min_dense_score", "KB_HOME", "KB_MODEL", "KB_USER", "KB_ROLE", "KB_EVAL_CACHE",
              "userdict.txt", "settings.toml"]
    missing = [n for n in names if f"`{n}`" not in README and f"`{n}`/" not in README and f"/`{n}`" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_command_examples_run(tmp_path, capsys, monkeypatch):
    """Each `kb` example line runs, from the repository root, against a fresh knowledge base."""
    home = tmp_path / "kb_data"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("KB_EVAL_CACHE", str(tmp_path / "eval-cache"))
    ids: dict[str, str] = {}
    failures = []
    for line in command_lines():
        for name, value in ids.items():
            line = line.replace(name, value)
        line = line.replace("--model DIR", "--model hashing:64")
        argv = shlex.split(line)[1:] + ["--home", str(home)]
        if argv[0] in ("backup", "restore"):  # backups too
            argv[1] = str(tmp_path / argv[1])
        if "--out" in argv:  # exports land in the test's folder, not the repository
            at = argv.index("--out") + 1
            argv[at] = str(tmp_path / argv[at])
        if argv[0] == "eval" and not (REPO / argv[1]).exists():
            continue  # the shared benchmark sets sit beside the repository only on our machines
        if any(arg.endswith("_ID") or arg == "TOPIC" for arg in argv):
            failures.append(f"{line}: placeholder not resolved")
            continue
        code = main(argv)
        out, err = capsys.readouterr()
        allowed = {0, 1} if argv[0] == "index" else {0}
        if code not in allowed:
            failures.append(f"{line}: exit {code}: {err.strip()}")
        if argv[:2] == ["topic", "import"]:
            main(["topic", "list", "--json", "--home", str(home)])
            ids["TOPIC"] = json.loads(capsys.readouterr().out)[0]["topic_id"]
        if argv[0] == "index" and "DOC_ID" not in ids:
            docs = KnowledgeBase(home).documents()
            ids["DOC_ID"] = next(d.doc_id for d in docs if d.title == "青溪市老年助餐服务管理办法")
        if argv[:2] == ["note", "add"] and code == 0:
            main(["note", "list", "--json", "--home", str(home)])
            ids["NOTE_ID"] = json.loads(capsys.readouterr().out)[0]["note_id"]
    assert not failures, "\n".join(failures)
    assert (tmp_path / "汇编.docx").stat().st_size > 10_000 and (tmp_path / "notes.csv").exists()
