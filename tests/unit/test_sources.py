"""Finding documents on disk: folders, JSON Lines, titles, and where access comes from."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.ingestion.sources import count_documents, guess_title, iter_documents

LIMIT = 1_000_000
DEFAULT = {"allow": ["group:everyone-default"]}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def items_by_label(paths, default=DEFAULT, max_bytes=LIMIT):
    return {item.label: item for item in iter_documents(paths, default_access=default, max_bytes=max_bytes)}


def test_folders_are_walked_for_supported_files_with_relative_ids(tmp_path):
    write(tmp_path / "a.md", "# Alpha\n\ntext")
    write(tmp_path / "sub" / "b.html", "<title>Beta page</title><p>x</p>")
    write(tmp_path / "sub" / "deeper" / "c.txt", "gamma")
    write(tmp_path / "sub" / "d.pdf", b"%PDF-1.4")
    write(tmp_path / "ignored.png", b"\x89PNG")
    write(tmp_path / ".hidden.md", "no")
    items = items_by_label([tmp_path])
    assert sorted(items) == ["a.md", "sub/b.html", "sub/d.pdf", "sub/deeper/c.txt"]
    assert count_documents([tmp_path]) == 4
    a = items["a.md"].document
    assert (a.external_id, a.title, a.content_type) == ("a.md", "Alpha", "text/markdown")
    assert a.source_uri == (tmp_path / "a.md").resolve().as_uri()
    assert items["sub/b.html"].document.title == "Beta page"
    assert items["sub/deeper/c.txt"].document.title == "c"
    assert items["sub/d.pdf"].document.content_type == "application/pdf"


def test_access_comes_from_sidecar_then_nearest_folder_file_then_default(tmp_path):
    write(tmp_path / "hr" / "access.json", json.dumps({"allow": ["group:hr"]}))
    write(tmp_path / "hr" / "pay" / "salaries.md", "# Salaries")
    write(tmp_path / "hr" / "pay" / "bonus.md", "# Bonus")
    write(tmp_path / "hr" / "pay" / "bonus.md.access.json", json.dumps({"allow": ["user:ceo"]}))
    write(tmp_path / "public.md", "# Public")
    items = items_by_label([tmp_path])
    assert items["hr/pay/salaries.md"].document.access == {"allow": ["group:hr"]}
    assert items["hr/pay/bonus.md"].document.access == {"allow": ["user:ceo"]}
    assert items["public.md"].document.access == DEFAULT


def test_a_file_without_any_access_is_refused_with_a_hint(tmp_path):
    write(tmp_path / "orphan.txt", "text")
    [item] = iter_documents([tmp_path], default_access=None, max_bytes=LIMIT)
    assert item.document is None and item.error.status_code == 422
    assert "--allow" in item.error.detail


def test_unreadable_sidecar_is_reported_for_its_document(tmp_path):
    write(tmp_path / "a.txt", "text")
    write(tmp_path / "a.txt.access.json", "{not json")
    [item] = iter_documents([tmp_path], default_access=DEFAULT, max_bytes=LIMIT)
    assert item.error is not None and "access" in item.error.detail


def test_oversized_files_are_refused_without_reading_them(tmp_path):
    write(tmp_path / "big.txt", "x" * 200)
    [item] = iter_documents([tmp_path], default_access=DEFAULT, max_bytes=100)
    assert item.error is not None and item.error.status_code == 413


def test_jsonl_lines_are_documents_with_their_own_or_the_default_access(tmp_path):
    lines = [
        {"external_id": "k1", "title": "One", "text": "first", "access": {"allow": ["group:x"]}},
        {"external_id": "k2", "title": "Two", "text": "second", "metadata": {"n": 2}},
    ]
    path = write(tmp_path / "docs.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n{oops\n"
                 + json.dumps({"external_id": "k4", "text": "no title"}) + "\n")
    items = list(iter_documents([path], default_access=DEFAULT, max_bytes=LIMIT))
    assert count_documents([path]) == 4
    assert [i.label for i in items] == ["docs.jsonl:1 (k1)", "docs.jsonl:2 (k2)", "docs.jsonl:4",
                                        "docs.jsonl:5 (k4)"]
    assert items[0].document.access == {"allow": ["group:x"]}
    assert items[1].document.access == DEFAULT and items[1].document.metadata == {"n": 2}
    assert "not valid JSON" in items[2].error.detail
    assert items[3].error.extra["field"] == "title"


def test_missing_paths_are_reported(tmp_path):
    [item] = iter_documents([tmp_path / "nope"], default_access=DEFAULT, max_bytes=LIMIT)
    assert item.error is not None and "no such file" in item.error.detail


def test_titles_fall_back_to_the_file_name(tmp_path):
    assert guess_title(Path("q3_revenue-report.txt"), b"numbers") == "q3 revenue report"
    assert guess_title(Path("x.html"), b"<h1 class='t'>Big <b>News</b></h1>") == "Big News"


def test_a_file_named_directly_with_an_unsupported_extension_is_refused(tmp_path):
    [item] = iter_documents([write(tmp_path / "deck.pptx", b"PK")], default_access=DEFAULT, max_bytes=LIMIT)
    assert item.document is None and item.error.status_code == 415
