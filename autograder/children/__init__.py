"""Scripts that the grader copies into a sandbox and runs as a child process.

They import nothing of the kit (a test holds them to it): ``harness`` runs the student's code
(for the grader and for the students' self-check), ``model_runner`` runs the models a submission
exported, without importing the submission.
"""
