import pytest

from videobert.core.errors import InvalidIdError
from videobert.core.ids import validate_name, validate_video_id, video_id_from_filename


@pytest.mark.parametrize("good", ["dQw4w9WgXcQ", "-abc_DEF12", "_x", "clip.v2", "a" * 128])
def test_valid_video_ids(good: str) -> None:
    assert validate_video_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "..", "../etc", "a/b", "/abs", "a\x00b", "a b", "$(rm -rf)", "a;b", "a|b", "`x`", "é", "a" * 129, "a..b", ".", ".hidden"],
)
def test_invalid_video_ids_are_rejected_with_the_value(bad: str) -> None:
    with pytest.raises(InvalidIdError) as err:
        validate_video_id(bad)
    assert "video id" in str(err.value)


def test_non_string_id() -> None:
    with pytest.raises(InvalidIdError, match="must be a string"):
        validate_video_id(42)


def test_names_cannot_start_with_dash() -> None:
    assert validate_name("download") == "download"
    with pytest.raises(InvalidIdError):
        validate_name("-rf")


def test_ids_from_file_names() -> None:
    assert video_id_from_filename("my cooking video") == "my_cooking_video"
    with pytest.raises(InvalidIdError, match="not allowed"):
        video_id_from_filename("recette crêpes")
