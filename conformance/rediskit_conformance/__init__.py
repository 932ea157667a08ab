"""Our side of the conformance job: settings, a recording test runner, the classes that bind
Django's and DRF's own test mixins to django-rediskit, and the one list of skips.

This package is put on ``PYTHONPATH`` of the upstream test processes by ``conformance/run.py``;
it is never imported by the package or by our own test suite.
"""
