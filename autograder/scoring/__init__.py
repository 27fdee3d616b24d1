"""The trusted computations behind every score.

``checks`` (what each check awards) and ``requests`` (the inputs each child gets) also run in the
students' self-check, which ships them without their grader-only parts; ``classifier``, ``copies``
and ``reference_stats`` run only in the grader's process.
"""
