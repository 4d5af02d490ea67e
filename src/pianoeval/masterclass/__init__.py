"""Masterclass experiment: can the moments where a teacher stops a student be predicted from audio?

- :mod:`.moments`  -- schema, loader and writer for the teaching-moments JSONL; audio lookup.
- :mod:`.segments` -- moments -> STOP/CONTINUE segments (messy-data rules, audio clamping, duration matching).
- :mod:`.classify` -- classifiers, leave-one-video-out CV, metrics, cluster bootstrap, permutation test.
"""
