"""`make pull` / `make push`: check a DVC remote's credentials first, then run `dvc pull` / `dvc push`.

Without credentials, DVC's Google Drive remote starts an OAuth browser flow and waits for a login on
localhost:8080 forever: on a server or in CI it hangs. This wrapper resolves the remote from DVC's
merged config (system, global, repo, `.dvc/config.local`), decides whether credentials are at hand,
and then:

* credentials found (or a remote that is not Google Drive): runs ``dvc <pull|push> -r <remote> ...``;
* none, standard input not a terminal: exits with status 2 within seconds, printing both auth routes;
* none, on a terminal: says a browser login follows and runs DVC (its browser flow).

Usage: ``python -m pianoeval.remote {pull,push} [-r REMOTE] [extra dvc arguments...]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS_ENV = "GDRIVE_CREDENTIALS_DATA"  # dvc-gdrive reads service-account or user credentials JSON here
EXIT_NO_CREDENTIALS = 2

AUTH_HELP = """\
No Google Drive credentials for DVC remote '{remote}' ({url}), and no terminal for a browser login.
Set up one of the two routes (README, "Remotes"), then rerun:

  1. Your own OAuth client (people; DVC's built-in OAuth app is blocked by Google):
       dvc remote modify --local {remote} gdrive_client_id '<id>.apps.googleusercontent.com'
       dvc remote modify --local {remote} gdrive_client_secret '<secret>'
     then run `make {action}` once in a terminal: a browser opens for consent and the token is cached
     ({cache}) for later non-interactive runs.

  2. A service account (CI, servers):
       dvc remote modify {remote} gdrive_use_service_account true
       export {env}="$(cat service-account-key.json)"
     A service account has no Drive storage of its own: put the remote folder in a Shared Drive that
     the account is a member of, or delegate to a user with
       dvc remote modify --local {remote} gdrive_service_account_user_email '<user@your-domain>'
"""


@dataclass(frozen=True)
class CredentialCheck:
    """Outcome of :func:`check_gdrive_credentials`: ``ok`` (credentials found), ``where`` (which ones,
    or where DVC would cache them), ``browser_flow`` (no credentials: DVC would start a browser login)."""

    ok: bool
    where: str
    browser_flow: bool


def oauth_cache_file(client_id: str, profile: str | None = None) -> Path:
    """Where PyDrive2 (through dvc-gdrive) caches a user's OAuth token for ``client_id``."""
    import appdirs

    return Path(appdirs.user_cache_dir("pydrive2fs", appauthor=False)) / client_id / f"{profile or 'default'}.json"


def check_gdrive_credentials(remote_cfg: dict, env: dict[str, str] | None = None) -> CredentialCheck:
    """Does a gdrive remote (its merged DVC config section) have credentials DVC can use without a browser?

    Mirrors dvc-gdrive's choice: with ``gdrive_use_service_account`` the key comes from
    ``GDRIVE_CREDENTIALS_DATA`` or ``gdrive_service_account_json_file_path``; otherwise user credentials
    come from ``GDRIVE_CREDENTIALS_DATA``, ``gdrive_user_credentials_file`` or PyDrive2's token cache for
    the configured (or DVC's default) OAuth client id.
    """
    env = os.environ if env is None else env
    if env.get(CREDENTIALS_ENV):
        return CredentialCheck(True, f"${CREDENTIALS_ENV}", False)
    if _truthy(remote_cfg.get("gdrive_use_service_account")):
        key = remote_cfg.get("gdrive_service_account_json_file_path")
        if key and Path(key).expanduser().is_file():
            return CredentialCheck(True, str(key), False)
        # A service account never falls back to a browser: dvc-gdrive raises a config error instead.
        return CredentialCheck(False, str(key) if key else f"${CREDENTIALS_ENV}", False)
    user_file = remote_cfg.get("gdrive_user_credentials_file")
    if user_file:
        path = Path(user_file).expanduser()
    else:
        from dvc_gdrive import GDriveFileSystem

        path = oauth_cache_file(remote_cfg.get("gdrive_client_id") or GDriveFileSystem.DEFAULT_GDRIVE_CLIENT_ID,
                                remote_cfg.get("profile"))
    if path.is_file():
        return CredentialCheck(True, str(path), False)
    return CredentialCheck(False, str(path), True)


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes") if value is not None else False


def resolve_remote(repo_root: str | Path, name: str | None) -> tuple[str, dict]:
    """(remote name, its merged config section); the default remote when ``name`` is None."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        config = repo.config
        name = name or config["core"].get("remote")
        if not name:
            raise SystemExit("remote: no default DVC remote configured; pass -r NAME (`make pull REMOTE=NAME`)")
        remotes = config.get("remote", {})
        if name not in remotes:
            raise SystemExit(f"remote: no DVC remote named '{name}' (have: {', '.join(remotes) or 'none'})")
        return name, dict(remotes[name])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pianoeval.remote", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("pull", "push"))
    ap.add_argument("-r", "--remote", default=None, help="DVC remote name (default: core.remote)")
    args, extra = ap.parse_known_args(argv)
    name, cfg = resolve_remote(Path.cwd(), args.remote)
    url = str(cfg.get("url", ""))
    if url.startswith("gdrive://"):
        check = check_gdrive_credentials(cfg)
        interactive = sys.stdin.isatty()
        if not check.ok:
            if not (check.browser_flow and interactive):
                sys.stderr.write(AUTH_HELP.format(remote=name, url=url, action=args.action, env=CREDENTIALS_ENV,
                                                  cache=check.where))
                if not check.browser_flow:
                    sys.stderr.write(f"\n(gdrive_use_service_account is set but no key was found at {check.where})\n")
                return EXIT_NO_CREDENTIALS
            print(f"remote: no cached Google Drive token for '{name}'; DVC opens a browser login next "
                  f"(token cached at {check.where}).", file=sys.stderr)
            if not cfg.get("gdrive_client_id"):
                print("remote: no gdrive_client_id configured: Google blocks DVC's built-in OAuth app "
                      "(\"This app is blocked\"); see route 1 in the README if the login fails.", file=sys.stderr)
        else:
            print(f"remote: '{name}' credentials from {check.where}", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "dvc", args.action, "-r", name, *extra])


if __name__ == "__main__":
    sys.exit(main())
