"""Existing repositories: the source checked and cloned, its project, environment and baseline.

``source`` (``open_repository``, ``clone_into``), ``project`` (``detect_project``),
``environment`` (``prepare_environment``, ``project_sandbox``), ``baseline``
(``run_baseline``, ``compare``); every refusal is in ``errors`` (exit code 2).
"""
