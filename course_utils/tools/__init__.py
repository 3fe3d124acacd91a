"""The authoring tools behind the `course` command. Never imported by a notebook.

    cli           `course`: doctor, data, build, grade, readme, compare, sweep
    pipeline      one jupytext source -> full notebook, exercise notebook, answer key
    readme        README's generated tables (chapters, datasets, course_utils by chapter)
    grade         scores an executed exercise notebook from its check lines
    portability   reruns a chapter under a second machine's numerics and diffs the stored outputs
    sweep         reruns a chapter over seed offsets: the ranges behind training-dependent claims
    data_command  `course data`: prepare the offline datasets, or list them

They sit above everything a learner imports (see CONTRIBUTING, "Where things live"); import-linter
checks that nothing below imports them.
"""
