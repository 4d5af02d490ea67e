"""Stage `t3_audio`: the T3 windows rendered with the T1 renderer into one packed audio store."""

from __future__ import annotations

from ._tier_audio import audio_stage


def main() -> None:
    audio_stage("t3")


if __name__ == "__main__":
    main()
