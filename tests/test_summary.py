import json

from pianoeval.summary import HEADLINES, _get

from conftest import REPO


def test_every_headline_key_exists_in_the_committed_metrics():
    missing = [f"{path}: {key}" for path, keys in HEADLINES.items()
               for key in keys if _get(json.loads((REPO / path).read_text()), key) is None]
    assert not missing, "summary keys absent from metrics:\n" + "\n".join(missing)
