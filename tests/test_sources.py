"""Video sources: id files, HowTo100M csv, local folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from videobert.core.errors import InvalidIdError, SettingsError
from videobert.ingest.sources import parse_youtube_id, read_howto100m_csv, read_id_file, read_local_dir


@pytest.mark.parametrize(
    "text",
    [
        "dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "youtu.be/dQw4w9WgXcQ",
        "https://m.youtube.com/shorts/dQw4w9WgXcQ", "https://www.youtube.com/embed/dQw4w9WgXcQ?start=3",
    ],
)
def test_youtube_id_forms(text: str) -> None:
    assert parse_youtube_id(text) == "dQw4w9WgXcQ"


def test_id_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text(
        "# cooking videos\n"
        "dQw4w9WgXcQ\n"
        "\n"
        "https://youtu.be/-abcdefghij  # a dash id\n"
        "dQw4w9WgXcQ\n"
        "https://example.org/recipes/soup.mp4\n"
        "not an id; rm -rf /\n"
    )
    scan = read_id_file(path)
    assert [v.id for v in scan.videos] == ["dQw4w9WgXcQ", "-abcdefghij", scan.videos[2].id]
    assert scan.videos[0].url == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert scan.videos[2].source == "url" and scan.videos[2].id.startswith("url-")
    assert scan.rejected[0] == ("ids.txt:7", "not a YouTube video id or an http(s) URL: 'not an id; rm -rf /'")
    assert scan.rejected[1][1] == "duplicate video id dQw4w9WgXcQ"
    assert len(read_id_file(path, limit=1).videos) == 1
    with pytest.raises(SettingsError, match="does not exist"):
        read_id_file(tmp_path / "nope.txt")


def test_howto100m_csv_filters_cooking(tmp_path: Path) -> None:
    path = tmp_path / "HowTo100M_v1.csv"
    path.write_text(
        "video_id,category_1,category_2,rank,task_id\n"
        "aaaaaaaaaaa,Food and Entertaining,Recipes,1,100\n"
        "bbbbbbbbbbb,Hobbies and Crafts,Woodworking,2,200\n"
        "ccccccccccc,Food and Entertaining,Drinks,3,101\n"
        "bad/id,Food and Entertaining,Recipes,4,102\n"
    )
    scan = read_howto100m_csv(path)
    assert [v.id for v in scan.videos] == ["aaaaaaaaaaa", "ccccccccccc"]
    assert scan.videos[0].info == {"category_1": "Food and Entertaining", "category_2": "Recipes", "rank": "1", "task_id": "100"}
    assert scan.videos[0].source == "howto100m"
    assert scan.rejected[0][0] == "HowTo100M_v1.csv:5"
    assert [v.id for v in read_howto100m_csv(path, ["woodworking"]).videos] == ["bbbbbbbbbbb"]
    assert len(read_howto100m_csv(path, None).videos) == 3
    assert [v.id for v in read_howto100m_csv(path, limit=1).videos] == ["aaaaaaaaaaa"]


def test_howto100m_csv_with_wrong_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,name\n1,2\n")
    with pytest.raises(SettingsError, match="missing columns video_id, category_1"):
        read_howto100m_csv(path)


def test_local_folder(tmp_path: Path) -> None:
    for name in ("b.mp4", "a clip.MOV", "sub/c.webm", "notes.txt", "x;y.mp4", "d.vtt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    scan = read_local_dir(tmp_path)
    assert [v.id for v in scan.videos] == ["a_clip", "b", "c"]
    assert scan.videos[1].source_id == str((tmp_path / "b.mp4").resolve())
    assert len(scan.rejected) == 1 and "x;y" in scan.rejected[0][1] and "rename the file" in scan.rejected[0][1]
    assert [v.id for v in read_local_dir(tmp_path, limit=2).videos] == ["a_clip", "b"]


def test_invalid_youtube_text() -> None:
    with pytest.raises(InvalidIdError):
        parse_youtube_id("https://www.youtube.com/watch?v=short")
