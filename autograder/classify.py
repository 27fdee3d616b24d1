"""Score generated digits with the classifier, in a process of the grader's own.

Usage: ``python -m autograder.classify SAMPLES.npz PROBABILITIES.npz``. The grader
runs this after the submission's children have finished, so that TensorFlow is
never loaded in the grader's own process and the peak memory stays low.
"""

from __future__ import annotations

import sys

import numpy as np

from autograder.classifier import load_classifier, predict_digits


def main(argv: list[str]) -> int:
    samples_path, output_path = argv[1:3]
    with np.load(samples_path, allow_pickle=False) as data:
        samples = np.asarray(data["samples"], dtype=np.float32)
    probabilities = predict_digits(load_classifier(), samples)
    np.savez(output_path, probabilities=probabilities)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
