"""The grader's process: it copies a submission into a sandbox, runs children and writes the results.

``grade`` drives one grade; ``sandbox`` starts and limits the children; ``submission`` finds and
copies the student's files; ``verification`` runs the exported models in children of their own;
``results`` writes Gradescope's ``results.json``.
"""
