"""Stage `t3_embed`: the T3 audio store -> one embedding store with the configured extractor."""

from __future__ import annotations

from ._tier_embed import embed_stage


def main() -> None:
    embed_stage("t3")


if __name__ == "__main__":
    main()
