"""The admin key inspector.

Two layers. The Redis-facing modules import no Django: ``scan`` (budgeted SCAN pages with a
resumable, cluster-ready cursor), ``meta`` (row metadata in one pipeline), ``values`` (typed value
pages), ``decoders`` (text, hex, JSON, our value header, pickle disassembly), ``sampler``,
``bulk`` and ``serverstats``. The admin layer on top (``access``, ``views``, ``admin``,
``config``) adds permissions, redaction, audit logging and templates. ``panels`` is the hook
through which the tags / sessions / throttle features describe their own keys.
"""
