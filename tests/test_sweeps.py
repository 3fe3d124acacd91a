"""Every training-dependent claim's threshold comes from a saved seed sweep and keeps its margin."""

import pytest

from course_utils.tools import pipeline, sweep

CHAPTERS = pipeline.all_chapters()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_every_sweep_comment_matches_its_saved_sweep_and_keeps_a_margin_of_twice_the_spread(chapter):
    comments = sweep.claim_comments(chapter.source.read_text(encoding="utf-8"))
    results = sweep.read_results(chapter)
    problems = [p for c in comments if (p := sweep.comment_problem(c, results))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_every_sweep_spec_names_cells_that_exist(chapter):
    if not sweep.spec_path(chapter).exists():
        pytest.skip(f"{chapter.slug} has no training-dependent claims to sweep")
    quantities = sweep.read_spec(chapter)
    nb = sweep.sweep_notebook(chapter, quantities, offset=0)
    recorded = [c.source for c in nb.cells if c.source.startswith("__sweep__[")]
    assert len(recorded) == len(quantities)


RESULTS = {"gap": (0.031, 0.058, 6), "loss": (2.928, 2.928, 6)}


def _comment(text):
    (parsed,) = sweep.claim_comments(text)
    return parsed


def test_a_claim_with_margin_passes():
    ok = _comment("# sweep: gap 0.031..0.058 over 6 runs; claim >= -0.03")
    assert ok.spread == pytest.approx(0.027) and ok.margin == pytest.approx(0.061)
    assert sweep.comment_problem(ok, RESULTS) is None
    assert sweep.comment_problem(_comment("# sweep: loss 2.928..2.928 over 6 runs; claim < 3"), RESULTS) is None


@pytest.mark.parametrize(
    "planted, complaint",
    [
        ("# sweep: gap 0.031..0.058 over 6 runs; claim >= 0.02", "less than 2 x the spread"),  # threshold too tight
        ("# sweep: gap 0.031..0.058 over 6 runs; claim >= 0.04", "less than 2 x the spread"),  # a seed fails it
        ("# sweep: gap 0.035..0.058 over 6 runs; claim >= -0.03", "the sweep 0.031..0.058"),  # min edited by hand
        ("# sweep: gap 0.031..0.058 over 3 runs; claim >= -0.03", "over 6"),  # runs do not match
        ("# sweep: gain 0.031..0.058 over 6 runs; claim >= -0.03", "no quantity 'gain'"),  # never swept
        ("# sweep: loss 2.928..2.928 over 6 runs; claim <= 2.928", "nearest value seen"),  # no margin at all
    ],
)
def test_planted_bad_sweep_comments_are_rejected(planted, complaint):
    assert complaint in sweep.comment_problem(_comment(planted), RESULTS)


def test_seed_literals_shift_and_everything_else_stays():
    source = "torch.manual_seed(0)\nLADDER_SEED = 1\nfit(seed=3)\ndevice = setup()\nrng = np.random.default_rng(0)\nf(seed=seed, n=10)"
    assert sweep.shift_seeds(source, 0) == source.replace("setup()", "setup(seed=42 + 0)").replace("(0)", "(0 + 0)").replace(
        "= 1\n", "= 1 + 0\n").replace("seed=3", "seed=3 + 0")
    shifted = sweep.shift_seeds(source, 1009)
    assert "manual_seed(0 + 1009)" in shifted and "LADDER_SEED = 1 + 1009" in shifted and "seed=3 + 1009" in shifted
    assert "setup(seed=42 + 1009)" in shifted and "default_rng(0 + 1009)" in shifted and "f(seed=seed, n=10)" in shifted


def test_a_tuple_of_seeds_moves_seed_by_seed():
    assert sweep.shift_seeds("LADDER_SEEDS = (1, 2, 3)", 1009) == "LADDER_SEEDS = (1010, 1011, 1012,)"
    assert sweep.shift_seeds("LADDER_SEEDS = (1, 2, 3)", 0) == "LADDER_SEEDS = (1, 2, 3,)"


def test_09s_claims_on_its_cached_models_match_their_retraining_sweep_and_keep_the_margin():
    # The sweep cannot move 09_deploy's cached models; sweeps/09_deploy_zoo.py retrains them with seeds 0-5, and
    # the chapter's "# zoo sweep:" comments quote that table, under the same rules as a sweep comment.
    chapter = next(c for c in CHAPTERS if c.slug == "09_deploy")
    lines = [line.replace("# zoo sweep:", "# sweep:") for line in chapter.source.read_text(encoding="utf-8").splitlines()
             if "# zoo sweep:" in line]
    comments = sweep.claim_comments("\n".join(lines))
    assert len(comments) == len(lines) >= 4
    results = sweep.read_table(sweep.SWEEPS_DIR / "09_deploy_zoo.results.md")
    problems = [p for c in comments if (p := sweep.comment_problem(c, results))]
    assert not problems, "\n".join(problems)
