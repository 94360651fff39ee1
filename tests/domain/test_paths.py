"""The rule of where process files may be: inside the data roots, on allowed buckets, or in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.config import DataSettings
from workers.domain.paths import PathNotAllowed, confine


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data" / "in").mkdir(parents=True)
    return tmp_path / "data"


@pytest.fixture
def settings(root: Path) -> DataSettings:
    return DataSettings(roots=[root], s3_buckets=["scores"])


def refusal(uri: str, settings: DataSettings) -> str:
    with pytest.raises(PathNotAllowed) as raised:
        confine(uri, settings)
    assert raised.value.code == "PATH_NOT_ALLOWED"
    return raised.value.message


def test_a_file_inside_a_root_is_allowed_as_its_resolved_path(root, settings):
    assert confine(str(root / "in" / "x.csv"), settings) == str(root / "in" / "x.csv")
    assert confine(f"file://{root}/y.csv", settings) == str(root / "y.csv")
    assert confine("in/new/z.parquet", settings) == str(root / "in" / "new" / "z.parquet")
    assert confine("in/../x.csv", settings) == str(root / "x.csv")


def test_a_second_root_is_allowed_too(root, tmp_path):
    other = tmp_path / "other"
    assert confine(str(other / "x.csv"), DataSettings(roots=[root, other])) == str(other / "x.csv")


def test_dot_dot_out_of_the_root_is_refused_naming_the_roots(root, settings):
    message = refusal("../x.csv", settings)
    assert "../x.csv: path refused, '..' leads out of the data roots" in message
    assert f"files under {root}" in message and "s3 buckets scores" in message
    assert "path refused" in refusal(f"{root}/in/../../x.csv", settings)


def test_an_absolute_path_elsewhere_is_refused(settings, tmp_path):
    (tmp_path / "elsewhere.csv").write_text("a,b\n1,2\n")
    assert "it is outside the data roots" in refusal(str(tmp_path / "elsewhere.csv"), settings)
    assert "outside the data roots" in refusal("/etc/passwd", settings)
    assert "another host" in refusal("file://server/share/x.csv", settings)


def test_a_symbolic_link_that_leads_out_is_refused(root, settings, tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (root / "link.csv").symlink_to(tmp_path / "secret.csv")
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    assert "a symbolic link leads out" in refusal(str(root / "link.csv"), settings)
    assert "a symbolic link leads out" in refusal("out/new.csv", settings)


def test_a_symbolic_link_inside_the_root_is_allowed(root, settings):
    (root / "in" / "x.csv").write_text("a\n1\n")
    (root / "alias.csv").symlink_to(root / "in" / "x.csv")
    assert confine("alias.csv", settings) == str(root / "in" / "x.csv")


def test_s3_only_on_an_allowed_bucket(root):
    assert confine("s3://scores/2024/x.csv", DataSettings(roots=[root], s3_buckets=["scores"])) == \
        "s3://scores/2024/x.csv"
    assert "bucket 'other'" in refusal("s3://other/x.csv", DataSettings(roots=[root], s3_buckets=["scores"]))
    message = refusal("s3://scores/x.csv", DataSettings(roots=[root]))
    assert "no s3 bucket" in message
    assert "'..'" in refusal("s3://scores/a/../../b.csv", DataSettings(roots=[root], s3_buckets=["scores"]))


@pytest.mark.parametrize("uri", ["runs:/0123/mlc/test_data.csv", "models:/m/1", "mlflow-artifacts:/1/a/b.csv"])
def test_the_uris_mlflow_serves_are_allowed(settings, uri):
    assert confine(uri, settings) == uri


def test_other_schemes_are_refused(settings):
    assert "https:// is not a place for data files" in refusal("https://example.com/x.csv", settings)


def test_the_default_root_is_the_fleets_data_folder(monkeypatch):
    monkeypatch.delenv("MLC_DATA_ROOTS", raising=False)
    monkeypatch.delenv("MLC_DATA_S3_BUCKETS", raising=False)
    assert DataSettings(_env_file=None) == DataSettings(roots=[Path(".mlc/data")], s3_buckets=[])


def test_the_lists_are_read_separated_by_commas_or_as_json(monkeypatch):
    monkeypatch.setenv("MLC_DATA_ROOTS", "/data, /srv/scores")
    monkeypatch.setenv("MLC_DATA_S3_BUCKETS", '["a", "b"]')
    assert DataSettings(_env_file=None) == DataSettings(roots=[Path("/data"), Path("/srv/scores")],
                                                        s3_buckets=["a", "b"])
