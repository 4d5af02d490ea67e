"""Google Drive remote: the locked PyDrive2 / pyOpenSSL / cryptography stack imports and builds DVC's
gdrive file system from this repository's own `.dvc/config` (no network), and `make pull` / `make push`
check credentials before DVC can hang on a browser login."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from pianoeval.remote import AUTH_HELP, EXIT_NO_CREDENTIALS, check_gdrive_credentials, oauth_cache_file


def fake_service_account_key() -> str:
    """A syntactically real service-account key (fresh RSA key, made-up account): enough to build
    and sign with the credentials offline; Google would reject it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "pianoeval-test", "private_key_id": "0" * 40,
                       "private_key": pem, "client_email": "ci@pianoeval-test.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"})


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GDRIVE_CREDENTIALS_DATA"}
    # PyDrive2's token cache lives under the user cache dir: point it at an empty folder.
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


def test_gdrive_import_chain():
    # pyOpenSSL 22.0.0 next to cryptography >= 44 fails right here ("module 'lib' has no attribute
    # 'GEN_EMAIL'"), which is what broke every `dvc pull`.
    import OpenSSL.crypto
    import pydrive2.auth
    import pydrive2.fs
    from oauth2client import crypt

    assert OpenSSL.crypto.sign and pydrive2.auth.GoogleAuth and pydrive2.fs.GDriveFileSystem
    assert crypt.Signer is crypt.OpenSSLSigner  # oauth2client signs with pyOpenSSL (its first choice)


def test_dvc_builds_gdrive_filesystem_from_repo_config(monkeypatch):
    """DVC's gdrive remote of .dvc/config -> dvc-gdrive fs -> PyDrive2 fs with service-account
    credentials (delegated), all offline: any connection attempt fails the test."""
    from dvc.repo import Repo

    monkeypatch.setenv("GDRIVE_CREDENTIALS_DATA", fake_service_account_key())

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while building the file system: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    overrides = {"remote": {"gdrive": {"gdrive_use_service_account": True,
                                       "gdrive_service_account_user_email": "someone@example.org"}}}
    with Repo(str(REPO), config=overrides) as repo:
        assert repo.config["core"]["remote"] == "gdrive"
        url = repo.config["remote"]["gdrive"]["url"]
        remote = repo.cloud.get_remote("gdrive")
        assert type(remote.fs).__module__ == "dvc_gdrive" and remote.fs.protocol == "gdrive"
        drive = remote.fs.fs  # PyDrive2's GDriveFileSystem: authenticates the service account
    assert url.startswith("gdrive://") and f"gdrive://{drive.root}/{drive.base}" == url
    creds = drive.client.auth.credentials
    assert type(creds).__name__ == "ServiceAccountCredentials"
    assert creds._kwargs == {"sub": "someone@example.org"}  # gdrive_service_account_user_email delegation
    assert type(creds._signer).__name__ == "OpenSSLSigner"
    header, claims, signature = creds._generate_assertion().split(b".")  # a JWT signed offline via pyOpenSSL
    assert json.loads(_b64(claims))["sub"] == "someone@example.org" and len(_b64(signature)) == 256


def _b64(part: bytes) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def test_credential_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = tmp_path / "sa.json"
    key.write_text("{}")
    sa = {"gdrive_use_service_account": True}
    assert check_gdrive_credentials({**sa, "gdrive_service_account_json_file_path": str(key)}, env={}).ok
    assert check_gdrive_credentials(sa, env={"GDRIVE_CREDENTIALS_DATA": "{...}"}).ok
    missing = check_gdrive_credentials({**sa, "gdrive_service_account_json_file_path": str(tmp_path / "no.json")},
                                       env={})
    assert not missing.ok and not missing.browser_flow  # a service account never falls back to a browser
    # OAuth: nothing cached -> DVC would start its browser flow; a cached token for the client id -> ok.
    oauth = {"gdrive_client_id": "123.apps.googleusercontent.com", "gdrive_client_secret": "s"}
    none = check_gdrive_credentials(oauth, env={})
    assert not none.ok and none.browser_flow
    cache = oauth_cache_file("123.apps.googleusercontent.com")
    assert Path(none.where) == cache and str(tmp_path / "cache") in str(cache)
    cache.parent.mkdir(parents=True)
    cache.write_text("{}")
    assert check_gdrive_credentials(oauth, env={}).ok
    assert not check_gdrive_credentials({"gdrive_client_id": "other"}, env={}).ok  # token is per client id
    user_file = tmp_path / "user.json"
    assert not check_gdrive_credentials({"gdrive_user_credentials_file": str(user_file)}, env={}).ok
    user_file.write_text("{}")
    assert check_gdrive_credentials({"gdrive_user_credentials_file": str(user_file)}, env={}).ok


def test_pull_without_credentials_and_terminal_fails_fast(tmp_path):
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pianoeval.remote", "pull"], cwd=REPO, env=clean_env(tmp_path),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert res.returncode == EXIT_NO_CREDENTIALS, res.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"
    for route in ("gdrive_client_id", "gdrive_client_secret", "gdrive_use_service_account",
                  "GDRIVE_CREDENTIALS_DATA", "Shared Drive", "gdrive_service_account_user_email"):
        assert route in res.stderr
    assert res.stderr.startswith(AUTH_HELP.split("'")[0])


def test_pull_on_a_terminal_goes_on_to_dvc(tmp_path):
    """With a terminal the wrapper hands over to DVC (whose browser flow follows); a target that does
    not exist makes DVC stop before it would connect."""
    master, slave = os.openpty()
    try:
        res = subprocess.run([sys.executable, "-m", "pianoeval.remote", "pull", "no_such_target.dvc"], cwd=REPO,
                             env=clean_env(tmp_path), stdin=slave, capture_output=True, text=True, timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert "DVC opens a browser login next" in res.stderr and "gdrive_client_id" in res.stderr
    assert "no_such_target.dvc' does not exist" in res.stderr  # DVC's own error: it was DVC that ran
    assert res.returncode != 0


def test_push_is_checked_too(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pianoeval.remote", "push"], cwd=REPO, env=clean_env(tmp_path),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert res.returncode == EXIT_NO_CREDENTIALS and "make push" in res.stderr
