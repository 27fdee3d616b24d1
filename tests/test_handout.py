"""The handout: its points table is CHECKS, and it covers every check and the topics students need."""

import shutil

from autograder.__main__ import main as autograder_main
from autograder.scoring.checks import CHECKS, TOTAL_POINTS, UNIT_CHECKS
from autograder.tools import release

HANDOUT = release.HANDOUT


def table_and_prose():
    text = HANDOUT.read_text()
    begin, end = text.index(release.TABLE_BEGIN), text.index(release.TABLE_END)
    return text[begin + len(release.TABLE_BEGIN):end], text[:begin] + text[end:]


def test_points_table_lists_every_check_with_its_points_in_order():
    table, _ = table_and_prose()
    rows = [line for line in table.strip().splitlines()[2:]]
    assert len(rows) == len(CHECKS) + 1
    for row, spec in zip(rows, CHECKS):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[:2] == [spec.name, f"{spec.points:g}"]
        assert cells[3] == "yes" if spec.key in UNIT_CHECKS else "--training" in cells[3]
    assert f"**{TOTAL_POINTS:g}**" in rows[-1]


def test_points_table_is_the_generated_one():
    table, _ = table_and_prose()
    assert table.strip() == release.points_table()
    assert release.update_handout(HANDOUT) is True
    assert autograder_main(["handout-table", "--check"]) == 0


def test_handout_table_write_repairs_a_stale_table(tmp_path, capsys):
    copy = tmp_path / "handout.md"
    shutil.copyfile(HANDOUT, copy)
    stale = copy.read_text().replace(f"| {CHECKS[0].name} | {CHECKS[0].points:g} |", f"| {CHECKS[0].name} | 99 |")
    copy.write_text(stale)
    assert release.update_handout(copy) is False
    assert copy.read_text() == stale
    assert release.update_handout(copy, write=True) is False
    assert copy.read_text() == HANDOUT.read_text()


def test_handout_describes_every_check_outside_the_table():
    _, prose = table_and_prose()
    for spec in CHECKS:
        assert f"**{spec.name}**" in prose, spec.name


def test_handout_covers_the_roadmap_the_math_and_the_faq():
    text = HANDOUT.read_text()
    headings = [line.lstrip("#").strip().lower() for line in text.splitlines() if line.startswith("#")]
    for heading in ("overview", "learning goals", "set up", "roadmap", "the math in brief",
                    "what the autograder checks", "conceptual questions", "faq", "going further (optional)"):
        assert heading in headings, heading
    for topic in ("reparametrization", "ELBO", "KL", "log-variance", "NaN", "--device", "MNIST_DATA_DIR",
                  "classifier", "β-VAE", "KL annealing", "traversal", "python check.py", "tf.GradientTape"):
        assert topic in text, topic
    # GitHub renders $...$ and $$...$$: every delimiter must be closed.
    assert text.count("$$") % 2 == 0 and text.count("$") % 2 == 0


def test_handout_states_the_graders_budget():
    from autograder.config import FULL_BUDGET, GradeConfig

    text = " ".join(HANDOUT.read_text().split())
    budget, config = FULL_BUDGET, GradeConfig()
    assert f"VAE(784, latent_size={budget.vae_latent_size})" in text
    assert f"CVAE(784, 10, latent_size={budget.cvae_latent_size})" in text
    assert f"batches of {budget.batch_size}" in text
    assert f"for at most {budget.vae_epochs} epochs" in text and f"for at most {budget.cvae_epochs} epochs" in text
    assert f"learning rate of {budget.learning_rate:g}" in text
    # The early stop: on inputs the children see, with a margin over the bars.
    stop_below = config.vae_loss_threshold - config.vae_stop_margin
    assert f"per image on {budget.eval_images:,} MNIST test images and stops once it is below {stop_below:g} " \
        f"(the bar of {config.vae_loss_threshold:g} less a margin" in text
    assert f"decodes {config.samples_per_digit} codes" in text
    assert f"stops once more than {config.generation_full_credit + config.generation_stop_margin:.0%} are " \
        "classified" in text
    # The scores: on other inputs, against the bars.
    assert f"on {budget.score_images:,} *other* test images: below {config.vae_loss_threshold:g} earns full " \
        "credit" in text
    assert f"scores {config.scored_samples_per_digit} fresh samples per digit: more than " \
        f"{config.generation_full_credit:.0%} earns full credit" in text
    # The points table (from checks.CHECKS) states the same numbers.
    from autograder.scoring.checks import CHECKS_BY_KEY

    summary = CHECKS_BY_KEY["cvae_generation"].summary
    assert f"{config.scored_samples_per_digit} samples per digit" in summary
    assert f"above {config.generation_full_credit:.0%} is full credit" in summary
    assert f"at most {budget.cvae_epochs} epochs" in summary
