"""The instructor's tools, each behind a subcommand of ``python -m autograder``.

Packaging: ``release`` (the students' release) and ``gradescope`` (the autograder zip). A class:
``batch`` (``grade-all``) and ``similarity``. Data: ``fetch_data``, ``train_classifier`` and
``measure_reference`` (the reference's statistics).
"""
