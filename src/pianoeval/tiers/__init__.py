"""Labelled tiers beside PercePiano: T2 (competition placement) and T3 (the same bars by different performers).

Modules: ``asap`` (reading ASAP, the T2/T3 selection), ``manifest`` (the T2 manifest, from ASAP or a
user's competition manifest), ``windows`` (bar-aligned windows), ``excerpt`` (MIDI excerpts rendered
with the T1 renderer), ``pairs`` (ordinal and contrastive pairs), ``stats`` (rank statistics with
group bootstrap and permutation tests), ``crossperformer`` (T3 retrieval and variance split).
"""
