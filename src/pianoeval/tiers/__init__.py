"""Labelled tiers beside PercePiano: T2 (competition placement) and T3 (the same bars by different performers).

Modules: ``asap`` (reading ASAP, the T2/T3 selection), ``manifest`` (the T2/T3 manifests, from ASAP
or a user's competition manifest), ``windows`` and ``segments`` (bar-aligned windows), ``excerpt``
(MIDI excerpts rendered with the T1 renderer), ``recordings`` (fixed windows of real recordings),
``pairs`` (ordinal and contrastive pairs), ``scoring`` (leakage-guarded quality scores), ``stats``
(rank statistics with group bootstrap and permutation tests), ``crossperformer`` (T3 retrieval and
variance split). The note-sequence matching used for the leakage check is ``pianoeval.midi_match``.
"""
