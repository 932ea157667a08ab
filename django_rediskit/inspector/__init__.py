"""The admin key inspector.

Two layers. The Redis-facing modules import no Django: ``scan`` (budgeted SCAN pages with a
resumable, cluster-ready cursor), ``meta`` (row metadata in one pipeline), ``values`` (typed value
pages), ``decoders`` (text, hex, JSON, our value header, pickle disassembly), ``sampler``,
``bulk`` and ``serverstats``. The admin layer on top (``access``, ``views``, ``admin``,
``config``) adds permissions, redaction, audit logging and templates. ``panels`` is the hook
through which a namespace's keys are described and acted on; ``feature_panels`` fills it for the
tags / sessions / throttle features through their public APIs.
"""
