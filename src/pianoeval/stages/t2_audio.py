"""Stage `t2_audio`: the T2 windows rendered with the T1 renderer into one packed audio store."""

from __future__ import annotations

from ._tier_audio import audio_stage


def main() -> None:
    audio_stage("t2")


if __name__ == "__main__":
    main()
